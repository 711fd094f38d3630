/* test_wake.c - the built-in wake-word model end to end (weights/MODEL_CARD_WAKE.md).
 *
 * usage: test_wake S4KWS WAKE_DEMO.flac     (exit 77, skipped, when s4kws embeds no wake model)
 *
 * 1. `s4kws info --model wake --format json`: the labels computer jarvis alexa _silence_
 *    _unknown_ and a threshold stored in the file for each wake word (its operating point).
 * 2. `s4kws listen --model wake --input DEMO` (tests/data/make_wake_demo.sh: the three words and
 *    a request after each, TTS voices): /v1/detections holds computer, jarvis, alexa in that
 *    order and nothing else. Synthetic speech of the engines the model learned from: this
 *    checks that the shipped model works in the daemon, not how well (bench/proxy.sh).
 * 3. `s4kws listen --model wake --input none --wyoming-port 0`: describe lists the three wake
 *    words as models; a client that asks for jarvis by name (detect) and streams the demo gets
 *    one detection, jarvis; one that asks for a word the model lacks gets unknown-wake-word.
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <signal.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/check.h"
#include "client.h"

static const char *const wake[] = {"computer", "jarvis", "alexa"};

static const char *str_or_empty(json_t *v)
{
	const char *s = json_string_value(v);
	return s ? s : "";
}

/* s4kws listen --model wake ARGS... with its port in a file; the pid, *port set, or -1. */
static pid_t listen_wake(const char *bin, const char *const *args, int *port)
{
	static int n;
	char pf[64];
	snprintf(pf, sizeof pf, "/tmp/s4kws-wake-%d-%d.port", (int)getpid(), ++n);
	unlink(pf);
	const char *av[32] = {bin, "listen", "--model", "wake", "--port", "0", "--port-file", pf,
			      "--log-level", "warn"};
	int k = 10;
	for (int i = 0; args[i] && k < 31; i++)
		av[k++] = args[i];
	av[k] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		execv(bin, (char **)av);
		_exit(127);
	}
	*port = 0;
	for (int i = 0; i < 400 && !*port && pid > 0; i++) {
		FILE *f = fopen(pf, "r");
		if (f) {
			if (fscanf(f, "%d", port) != 1)
				*port = 0;
			fclose(f);
		}
		if (!*port)
			usleep(25000);
	}
	unlink(pf);
	return *port ? pid : -1;
}

static void stop(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
}

static json_t *get_json(int port, const char *path)
{
	struct resp r;
	http_req(port, "GET", path, NULL, NULL, 0, &r);
	json_error_t je;
	json_t *o = r.status == 200 ? json_loads(r.body, 0, &je) : NULL;
	free(r.body);
	return o;
}

static int test_info(const char *bin)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "'%s' info --model wake --format json 2>&1", bin);
	FILE *p = popen(cmd, "r");
	static char out[1 << 20];
	size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
	out[n] = 0;
	int rc = p ? pclose(p) : -1;
	if (rc != 0 && strstr(out, "neither a file nor a built-in model"))
		return 77;
	json_error_t je;
	json_t *o = json_loads(out, 0, &je);
	json_t *labels = json_object_get(o, "labels"), *thr = json_object_get(o, "thresholds");
	static const char *const want[] = {"computer", "jarvis", "alexa", "_silence_", "_unknown_"};
	int ok = json_array_size(labels) == 5;
	for (size_t i = 0; ok && i < 5; i++)
		ok = !strcmp(str_or_empty(json_array_get(labels, i)), want[i]);
	CHECK(rc == 0 && ok, "info --model wake: the labels computer jarvis alexa _silence_ _unknown_ (%s)",
	      o ? "" : out);
	for (int k = 0; k < 3; k++) {
		double t = json_number_value(json_object_get(thr, wake[k]));
		CHECK(t > 0 && t <= 1, "the file holds a threshold for %s (%g)", wake[k], t);
	}
	json_decref(o);
	return 0;
}

static void test_listen_demo(const char *bin, const char *demo)
{
	int port;
	const char *args[] = {"--input", demo, NULL};
	pid_t pid = listen_wake(bin, args, &port);
	CHECK(pid > 0, "listen --model wake --input %s starts", demo);
	if (pid < 0)
		return;
	int eof = 0;
	for (int i = 0; i < 300 && !eof; i++) {
		json_t *st = get_json(port, "/v1/status");
		const char *s = json_string_value(json_object_get(json_object_get(st, "input"), "state"));
		eof = s && !strcmp(s, "eof");
		json_decref(st);
		if (!eof)
			usleep(50000);
	}
	json_t *d = get_json(port, "/v1/detections");
	json_t *arr = json_object_get(d, "detections");
	char got[256] = "";
	for (size_t i = 0; i < json_array_size(arr); i++) {
		const char *kw = json_string_value(json_object_get(json_array_get(arr, i), "keyword"));
		snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? " " : "", kw ? kw : "?");
	}
	CHECK(eof && !strcmp(got, "computer jarvis alexa"),
	      "the demo gives computer, jarvis, alexa in order and nothing else: got '%s'", got);
	json_decref(d);
	stop(pid);
}

/* The demo as 16-bit mono samples; NULL on failure. */
static short *read_demo(const char *demo, size_t *n)
{
	SF_INFO si = {0};
	SNDFILE *sf = sf_open(demo, SFM_READ, &si);
	short *x = sf && si.channels == 1 ? malloc((size_t)si.frames * sizeof *x) : NULL;
	*n = x ? (size_t)sf_readf_short(sf, x, si.frames) : 0;
	if (sf)
		sf_close(sf);
	return x;
}

static void test_wyoming(const char *bin, const char *demo)
{
	int port;
	const char *args[] = {"--input", "none", "--wyoming-port", "0", NULL};
	pid_t pid = listen_wake(bin, args, &port);
	CHECK(pid > 0, "listen --model wake --input none --wyoming-port 0 starts");
	if (pid < 0)
		return;
	json_t *st = get_json(port, "/v1/status");
	int wport = (int)json_integer_value(json_object_get(json_object_get(st, "wyoming"), "port"));
	json_decref(st);
	int fd = client_connect(wport);
	json_t *models = wy_describe_models(fd);
	int named = json_array_size(models) == 3;
	for (int k = 0; named && k < 3; k++)
		named = !strcmp(str_or_empty(json_object_get(json_array_get(models, (size_t)k), "name")), wake[k]);
	CHECK(named, "describe lists computer, jarvis and alexa as wake models");
	json_decref(models);

	size_t n;
	short *x = read_demo(demo, &n);
	CHECK(x && n > 16000, "read %s", demo);
	wy_send(fd, "detect", "{\"names\":[\"jarvis\"]}", NULL, 0);
	wy_send(fd, "audio-start", "{\"rate\":16000,\"width\":2,\"channels\":1}", NULL, 0);
	for (size_t p = 0; x && p < n; p += 1600) {
		size_t k = n - p < 1600 ? n - p : 1600;
		wy_send(fd, "audio-chunk", "{\"rate\":16000,\"width\":2,\"channels\":1}", x + p, k * sizeof *x);
	}
	wy_send(fd, "audio-stop", NULL, NULL, 0);
	char got[256] = "";
	for (json_t *e; (e = wy_recv(fd, 5000));) {
		const char *type = json_string_value(json_object_get(e, "type"));
		if (type && !strcmp(type, "detection")) {
			const char *nm = json_string_value(json_object_get(json_object_get(e, "data"), "name"));
			snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", *got ? " " : "", nm ? nm : "?");
		}
		int end = type && (!strcmp(type, "not-detected") || !strcmp(type, "error"));
		json_decref(e);
		if (end || strstr(got, "jarvis"))
			break;
	}
	CHECK(!strcmp(got, "jarvis"), "a client asking for jarvis by name gets jarvis only: got '%s'", got);
	close(fd);

	fd = client_connect(wport);
	wy_send(fd, "detect", "{\"names\":[\"yes\"]}", NULL, 0);
	json_t *e = wy_recv(fd, 5000);
	const char *code = json_string_value(json_object_get(json_object_get(e, "data"), "code"));
	CHECK(code && !strcmp(code, "unknown-wake-word"), "detect of a word the model lacks: %s",
	      code ? code : "no error event");
	json_decref(e);
	close(fd);
	free(x);
	stop(pid);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: test_wake S4KWS WAKE_DEMO.flac\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (test_info(argv[1]) == 77) {
		printf("this s4kws embeds no wake-word model: skipped\n");
		return 77;
	}
	test_listen_demo(argv[1], argv[2]);
	test_wyoming(argv[1], argv[2]);
	return CHECK_DONE();
}
