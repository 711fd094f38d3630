/* test_listen_wyoming.c - black-box tests of the Wyoming server in `s4kws listen`.
 *
 * usage: test_listen_wyoming S4KWS_BINARY MODEL
 *
 * The real binary (listen_harness.h) with --wyoming-port; a client here streams the test signal
 * as Wyoming audio chunks, as Home Assistant does, and the detections that come back must be
 * those of `s4kws classify --mode stream` over the same audio: at 16 kHz at the same times, at
 * 48 kHz resampled within 30 ms; describe/info, unknown wake-word names, and --verify over
 * Wyoming.
 */
#include "listen_harness.h"

/* ---- Wyoming ---- */

/* Stream the signal x (n samples at rate, mono, as S16_LE) in chunks and collect the detection
 * timestamps (ms) until count arrived or 3 s of silence from the server. */
static size_t wy_stream(int port, const float *x, size_t n, int rate, const char *names, double *ms,
			size_t max, int *not_detected)
{
	int fd = client_connect(port);
	char fmt[128];
	snprintf(fmt, sizeof fmt, "{\"rate\":%d,\"width\":2,\"channels\":1}", rate);
	char det[256];
	snprintf(det, sizeof det, "{\"names\":%s}", names);
	wy_send(fd, "detect", det, NULL, 0);
	/* audio-start with its data in the additional-data section (data_length), as newer
	 * clients send it */
	char hdr[256];
	int hl = snprintf(hdr, sizeof hdr, "{\"type\":\"audio-start\",\"data_length\":%zu}\n%s", strlen(fmt), fmt);
	send_all(fd, hdr, (size_t)hl);
	int16_t chunk[1000];
	for (size_t i = 0; i < n; i += 1000) {
		size_t k = n - i < 1000 ? n - i : 1000;
		for (size_t j = 0; j < k; j++)
			chunk[j] = (int16_t)lrintf(fmaxf(-32768.f, fminf(32767.f, x[i + j] * 32768.f)));
		wy_send(fd, "audio-chunk", NULL, chunk, k * 2); /* the format of audio-start */
	}
	wy_send(fd, "audio-stop", NULL, NULL, 0);
	size_t got = 0;
	*not_detected = 0;
	json_t *e;
	while ((e = wy_recv(fd, 3000))) {
		const char *t = json_string_value(json_object_get(e, "type"));
		json_t *d = json_object_get(e, "data");
		if (t && !strcmp(t, "detection") && got < max) {
			const char *nm = json_string_value(json_object_get(d, "name"));
			CHECK(nm && !strcmp(nm, "yes"), "detection name %s", nm ? nm : "(none)");
			ms[got++] = (double)json_integer_value(json_object_get(d, "timestamp"));
		}
		if (t && !strcmp(t, "not-detected"))
			*not_detected = 1;
		json_decref(e);
		if (*not_detected)
			break;
	}
	close(fd);
	return got;
}

/* The Wyoming detection times ms[0..got) are the reference's decision points within tol_ms. */
static int same_times(const double *ms, size_t got, const struct dets *ref, double tol_ms)
{
	int same = got == ref->n;
	for (size_t i = 0; same && i < got; i++)
		same = fabs(ms[i] - 1000 * ref->offset[i]) <= tol_ms;
	return same;
}

/* --input none --wyoming-port 0: a Wyoming client gets info, and for the test signal streamed
 * at 16 kHz exactly the detections of the live reference (same ms); at 48 kHz (resampled) the
 * same number within 30 ms; a stream without a selected keyword gives not-detected; a bad header gets an error event
 * without harming the server. */
static void test_wyoming(void)
{
	struct proc p;
	const char *a[] = {"--input", "none", "--wyoming-port", "0", "--log", path("wy.jsonl"), NULL};
	CHECK(start(&p, NULL, a, det_args) == 0, "start a Wyoming server: %s", p.err);
	json_t *st = get_json(p.port, "/v1/status", NULL, NULL);
	int wport = (int)json_integer_value(json_object_get(json_object_get(st, "wyoming"), "port"));
	CHECK(wport > 0 && !strcmp(jstr(st, "input", "state"), "none"), "status: wyoming port %d, input %s", wport,
	      jstr(st, "input", "state"));
	json_decref(st);
	st = get_json(p.port, "/v1/scores", NULL, NULL);
	CHECK(st && json_array_size(json_object_get(st, "channels")) == 0, "--input none: no channel in /v1/scores");
	json_decref(st);

	int fd = client_connect(wport);
	json_t *models = wy_describe_models(fd);
	int has_yes = 0;
	for (size_t i = 0; i < json_array_size(models); i++)
		has_yes |= !strcmp(json_string_value(json_object_get(json_array_get(models, i), "name")), "yes");
	CHECK(models && has_yes, "describe -> info with the keywords as wake models");
	json_decref(models);
	close(fd);

	SF_INFO si = {0};
	SNDFILE *sf = sf_open(path("mono.wav"), SFM_READ, &si);
	float *x = malloc((size_t)si.frames * sizeof *x);
	CHECK(sf && x && sf_readf_float(sf, x, si.frames) == si.frames, "read mono.wav");
	sf_close(sf);
	double ms[256];
	int nd = 0;
	size_t got = wy_stream(wport, x, (size_t)si.frames, 16000, "[\"yes\"]", ms, 256, &nd);
	CHECK(same_times(ms, got, &ref_mono, 1) && !nd, "16 kHz stream: %zu detections (reference %zu), the same times", got, ref_mono.n);
	/* the daemon's own: /v1/detections and the log have them, named after the client */
	json_t *dl = get_json(p.port, "/v1/detections", NULL, NULL);
	json_t *arr = json_object_get(dl, "detections");
	size_t named = 0;
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *d = json_array_get(arr, i);
		const char *cn = json_string_value(json_object_get(d, "channel_name"));
		named += cn && !strncmp(cn, "wyoming 127.0.0.1:", 18) &&
			 json_integer_value(json_object_get(d, "channel")) == -1 &&
			 fabs(json_number_value(json_object_get(d, "offset")) * 1000 - ms[i < got ? i : 0]) <= 1;
	}
	CHECK(got && named == got && json_array_size(arr) == got,
	      "Wyoming detections in /v1/detections (%zu of %zu, channel -1, named, same offsets)", named, got);
	json_decref(dl);
	CHECK(file_has(path("wy.jsonl"), "\"channel_name\":\"wyoming 127.0.0.1:"), "and in the --log file");

	sf = sf_open(path("mono48k.wav"), SFM_READ, &si);
	float *x48 = malloc((size_t)si.frames * sizeof *x48);
	CHECK(sf && x48 && sf_readf_float(sf, x48, si.frames) == si.frames, "read mono48k.wav");
	sf_close(sf);
	got = wy_stream(wport, x48, (size_t)si.frames, 48000, "[]", ms, 256, &nd);
	CHECK(same_times(ms, got, &ref_mono, 30), "48 kHz stream, resampled: %zu detections (reference %zu) within 30 ms", got, ref_mono.n);
	free(x48);

	/* only "no", which the test settings never let fire: audio-stop answers not-detected */
	got = wy_stream(wport, x, 16000, 16000, "[\"no\"]", ms, 256, &nd);
	CHECK(got == 0 && nd, "no selected keyword said: not-detected (%zu detections)", got);
	free(x);

	fd = client_connect(wport);
	send_all(fd, "this is not json\n", 17);
	json_t *e = wy_recv(fd, 5000);
	CHECK(e && !strcmp(json_string_value(json_object_get(e, "type")), "error") &&
	      !strcmp(json_string_value(json_object_get(json_object_get(e, "data"), "code")), "bad-event"),
	      "a bad header gets an error event");
	json_decref(e);
	CHECK(wy_recv(fd, 5000) == NULL, "and the connection is closed");
	close(fd);
	fd = client_connect(wport);
	wy_send(fd, "audio-chunk", "{\"rate\":16000,\"width\":2,\"channels\":1}", NULL, 0);
	send_all(fd, "{\"type\":\"audio-chunk\",\"payload_length\":99999999}\n", 50);
	e = wy_recv(fd, 5000);
	CHECK(e && !strcmp(json_string_value(json_object_get(e, "type")), "error"), "an oversize payload is refused");
	json_decref(e);
	close(fd);

	st = get_json(p.port, "/v1/status", NULL, NULL);
	json_t *w = json_object_get(st, "wyoming");
	CHECK(json_integer_value(json_object_get(w, "connections")) == 6 &&
	      json_integer_value(json_object_get(w, "errors")) == 2 &&
	      json_integer_value(json_object_get(w, "detections")) == (json_int_t)(2 * ref_mono.n),
	      "status counts: %s", json_dumps(w, 0));
	json_decref(st);
	/* a rate beyond any integer type is refused, not wrapped (2^32 + 16000 was 16000) */
	fd = client_connect(wport);
	wy_send(fd, "audio-start", "{\"rate\":4294983296,\"width\":2,\"channels\":1}", NULL, 0);
	e = wy_recv(fd, 5000);
	CHECK(e && !strcmp(json_string_value(json_object_get(json_object_get(e, "data"), "code")), "unsupported-format"),
	      "rate 4294983296 refused");
	json_decref(e);
	close(fd);

	/* ping -> pong with its text; detect naming no keyword of the model -> an error event */
	fd = client_connect(wport);
	wy_send(fd, "ping", "{\"text\":\"hi\"}", NULL, 0);
	e = wy_recv(fd, 5000);
	CHECK(e && !strcmp(json_string_value(json_object_get(e, "type")), "pong") &&
	      !strcmp(json_string_value(json_object_get(json_object_get(e, "data"), "text")), "hi"), "ping -> pong");
	json_decref(e);
	wy_send(fd, "detect", "{\"names\":[\"ok_nabu\"]}", NULL, 0);
	e = wy_recv(fd, 5000);
	CHECK(e && !strcmp(json_string_value(json_object_get(json_object_get(e, "data"), "code")), "unknown-wake-word"),
	      "detect ok_nabu -> error unknown-wake-word");
	json_decref(e);
	close(fd);

	/* mute and PUT /v1/thresholds reach Wyoming clients */
	struct resp rr;
	http_req(p.port, "POST", "/v1/mute", NULL, NULL, 0, &rr);
	free(rr.body);
	float *x2 = malloc(320000 * sizeof *x2); // up to 20 s of mono.wav
	sf = sf_open(path("mono.wav"), SFM_READ, &si);
	sf_count_t nf = sf && x2 ? sf_readf_float(sf, x2, si.frames < 320000 ? si.frames : 320000) : 0;
	sf_close(sf);
	got = wy_stream(wport, x2, (size_t)nf, 16000, "[\"yes\"]", ms, 256, &nd);
	st = get_json(p.port, "/v1/status", NULL, NULL);
	json_int_t muted = json_integer_value(json_object_get(json_object_get(st, "wyoming"), "muted"));
	json_decref(st);
	CHECK(got == 0 && nd && muted > 0, "muted: nothing sent, not-detected (%zu detections, %lld muted)", got,
	      (long long)muted);
	http_req(p.port, "DELETE", "/v1/mute", NULL, NULL, 0, &rr);
	free(rr.body);
	const char *up = "{\"yes\": 1}";
	http_req(p.port, "PUT", "/v1/thresholds", "Content-Type: application/json\r\n", up, strlen(up), &rr);
	CHECK(rr.status == 200, "PUT /v1/thresholds yes=1: %d", rr.status);
	free(rr.body);
	got = wy_stream(wport, x2, (size_t)nf, 16000, "[\"yes\"]", ms, 256, &nd);
	CHECK(got == 0 && nd, "threshold 1 reaches the Wyoming client: %zu detections", got);
	free(x2);
	CHECK_EQ(stop(&p, SIGTERM), 0);
}

/* --verify on a Wyoming client: the detections of the file-mode reference with the same flags,
 * at the same times (where they were decided); --verify 1: none, and audio-stop says
 * not-detected after judging the candidates still waiting. */
static void test_verify_wyoming(void)
{
	SF_INFO si = {0};
	SNDFILE *sf = sf_open(path("mono.wav"), SFM_READ, &si);
	float *x = malloc((size_t)si.frames * sizeof *x);
	CHECK(sf && x && sf_readf_float(sf, x, si.frames) == si.frames, "read mono.wav");
	sf_close(sf);
	const char *const vals[] = {"0.001", "1"};
	for (int i = 0; i < 2; i++) {
		const char *va[] = {"--verify", vals[i], "--verify-after-ms", "200", "--onset", "0.99", NULL};
		struct dets want;
		reference_with(path("mono.wav"), va, &want);
		const char *a[] = {"--input", "none", "--wyoming-port", "0", "--verify", vals[i], "--verify-after-ms",
				   "200", "--onset", "0.99", NULL};
		struct proc p;
		CHECK(start(&p, NULL, a, det_args) == 0, "start a Wyoming server with verify %s: %s", vals[i], p.err);
		json_t *st = get_json(p.port, "/v1/status", NULL, NULL);
		int wport = (int)json_integer_value(json_object_get(json_object_get(st, "wyoming"), "port"));
		json_decref(st);
		double ms[256];
		int nd = 0;
		size_t got = wy_stream(wport, x, (size_t)si.frames, 16000, "[\"yes\"]", ms, 256, &nd);
		CHECK(same_times(ms, got, &want, 1), "Wyoming, verify %s: %zu detections (reference %zu), the same times", vals[i], got, want.n);
		if (i == 1)
			CHECK(got == 0 && nd, "verify 1: no detection, not-detected (%zu)", got);
		CHECK_EQ(stop(&p, SIGTERM), 0);
	}
	free(x);
}

/* --channel-names: every detection carries its channel's name, over HTTP and in the log (and
 * back after a restart); a wrong count is refused at start in one sentence. */

int main(int argc, char **argv)
{
	int rc = listen_setup(argc, argv, "test_listen_wyoming");
	if (rc)
		return rc;
	test_wyoming();
	test_verify_wyoming();
	return listen_cleanup();
}
