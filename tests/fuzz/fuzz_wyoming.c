/* fuzz_wyoming.c - libFuzzer entry point for the Wyoming event reader: any bytes sent by one
 * client to a real Wyoming server (daemon/wyoming.c) on loopback, as a satellite would send
 * them: event header lines, data sections, payloads (audio-start/audio-chunk with PCM, detect,
 * describe, ping, garbage). The server runs for the whole fuzzing process over the small test
 * model (S4KWS_FUZZ_MODEL, default tests/data/golden_dplr.safetensors); each input is one
 * connection, written whole, then half-closed, and read until the server closes it. Besides
 * "no crash" (ASan/UBSan) in the server's threads: every input gets its connection closed
 * within the time limit (no hang), and every line the server sends is a JSON object with a
 * type (the protocol's framing is never broken).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/log.h"
#include "fuzz_conn.h"
#include "daemon/wyoming.h"
#include "spot/scan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int port;

static void start_server(void)
{
	char err[256];
	log_set_level(LOGL_ERROR);
	const char *path = getenv("S4KWS_FUZZ_MODEL");
	struct s4m_model *m = s4m_load(path ? path : "tests/data/golden_dplr.safetensors", 1.0, err, sizeof err);
	if (!m) {
		fprintf(stderr, "fuzz_wyoming: %s (set S4KWS_FUZZ_MODEL)\n", err);
		exit(2);
	}
	static struct pp_kw kw[64];
	static const char *labels[64];
	int K = s4m_n_labels(m);
	for (int k = 0; k < K && k < 64; k++) {
		pp_kw_default(&kw[k]);
		labels[k] = s4m_label(m, k);
	}
	static struct pp_config pc;
	size_t hop = scan_hop(m, 10.0);
	pp_config_default(&pc, s4m_sample_rate(m), hop, K, labels, kw);
	struct wy_config wc = {.bind = "127.0.0.1", .port = 0, .m = m, .pc = &pc, .hop = hop, .period = 0,
			       .max_clients = 4, .timeout_s = 5, .version = "fuzz"};
	struct wyoming *w = wy_start(&wc, err, sizeof err); /* lives until the process ends */
	if (!w) {
		fprintf(stderr, "fuzz_wyoming: %s\n", err);
		exit(2);
	}
	port = wy_port(w);
}

/* Every complete line the server sent must be a JSON object with a string "type". */
static void check_lines(const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		json_error_t je;
		json_t *o = json_loadb(p, (size_t)(nl - p), 0, &je);
		if (!json_is_object(o) || !json_is_string(json_object_get(o, "type")))
			abort();
		json_decref(o);
		p = nl + 1;
	}
}

/* A full buffer: check its lines, then start again. */
static size_t check_full(const char *buf, size_t len)
{
	check_lines(buf, len);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!port)
		start_server();
	static char got[1 << 16];
	check_lines(got, fuzz_exchange(port, data, size, got, sizeof got, check_full));
	return 0;
}
