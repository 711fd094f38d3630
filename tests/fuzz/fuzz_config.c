/* fuzz_config.c - libFuzzer entry point for the config file parser: any bytes as a config file
 * through cfg_load_file() (daemon/config.c: the whole file read first, NUL bytes and over-long
 * files refused, then inih and the option table). Besides "no crash, no leak" (ASan/UBSan): a
 * refused file always gets one line of error naming the file, and an accepted one leaves every
 * checked option inside the range the table declares.
 *
 * The bytes reach the parser as a real file: a memfd, opened by its /proc/self/fd path.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon/config.h"
#include "daemon/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	log_set_level(LOGL_ERROR);
	int fd = memfd_create("fuzz.conf", MFD_CLOEXEC);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	char path[64], err[256] = "";
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	struct cfg *c = malloc(sizeof *c);
	if (!c) {
		close(fd);
		return 0;
	}
	cfg_defaults(c);
	int rc = cfg_load_file(c, path, err, sizeof err);
	close(fd);
	if (rc < 0) {
		size_t n = strnlen(err, sizeof err);
		if (n == 0 || memchr(err, '\n', n) || !strstr(err, path))
			abort(); /* one line that names the file */
	} else if (c->port < 0 || c->port > 65535 || c->channels < 0 || c->channels > 64 ||
		   !(c->threshold.def > 0 && c->threshold.def <= 1) || !(c->hop_ms > 0) || !isfinite(c->duration) ||
		   c->threshold.n < 0 || memchr(c->model, 0, sizeof c->model) == NULL) {
		abort(); /* accepted values stay inside the table's ranges */
	}
	free(c);
	return 0;
}
