/* test_listen.c - black-box tests of `s4kws listen`: where the audio comes from.
 *
 * usage: test_listen S4KWS_BINARY MODEL
 *
 * Each case starts the real binary (listen_harness.h) and checks that every input path reports
 * exactly the detections that `s4kws classify --mode stream` finds in the same audio:
 *   - --input FILE: /v1/detections, SSE from the start, SSE resumed with Last-Event-ID, the
 *     JSON-lines log, /v1/status (eof, audio seconds, rate) and /metrics agree; the log
 *     survives a restart (ids continue); --realtime paces the input; NaN and huge samples are
 *     zeroed with one warning; systemd notify (ready, watchdog, reload, stopping); SIGTERM
 *     still answers an upload in flight; damaged Ogg uploads leave the daemon's memory flat;
 *   - --input - (raw S16_LE on stdin), a 2-channel file (keyword audio on channel 1 only),
 *     and the real PortAudio path on an ALSA `type file` PCM (--device, --duration) give the
 *     same detections; a 48 kHz file is resampled;
 *   - a missing device is reported in status with retries while HTTP keeps serving;
 *   - a device that goes quiet mid-stream (the ALSA file PCM reading a FIFO whose writer, a
 *     thread here, pauses with the FIFO still open) is reported in status as an error after
 *     --device-stall, retried with back-off while HTTP keeps serving, and captures again once
 *     audio flows; SIGTERM while the capture is blocked in the driver still exits promptly.
 * test_listen_api.c covers what listen does with detections and requests, test_listen_wyoming.c
 * the Wyoming server.
 */
#include "listen_harness.h"

static void test_file_input(void)
{
	const char *wav = path("mono.wav");
	struct proc p;
	const char *args[] = {"--input", wav, "--log", path("det.jsonl"), "--heartbeat", "0.2", "--realtime", NULL};
	/* realtime: 6 s of audio must take >= ~6 s; a live SSE stream from id 0 sees them all */
	int64_t t0 = client_ms();
	CHECK(start(&p, NULL, args, det_args) == 0, "start: see %s", p.err);
	int fd = sse_open(p.port, "/v1/events?since=0", NULL);
	json_t *st = wait_state(p.port, "eof", NULL);
	int64_t dt = client_ms() - t0;
	CHECK(st && !strcmp(jstr(st, "input", "state"), "eof"), "eof reached");
	CHECK(dt >= 5500, "--realtime paced 6 s of audio: %lld ms", (long long)dt);
	CHECK_NEAR(json_number_value(json_object_get(st, "audio_s")), 6.0, 0.011);
	CHECK(json_integer_value(json_object_get(st, "channels")) == 1 &&
		      json_integer_value(json_object_get(json_object_get(st, "input"), "rate")) == 16000 &&
		      !strcmp(jstr(st, "input", "kind"), "file") && json_integer_value(json_object_get(st, "overruns")) == 0 &&
		      json_integer_value(json_object_get(st, "dropped_samples")) == 0 &&
		      json_is_number(json_object_get(st, "real_time_factor")) &&
		      json_array_size(json_object_get(json_object_get(st, "model"), "labels")) == 12,
	      "status fields");
	json_decref(st);

	json_t *o = get_json(p.port, "/v1/detections?limit=1000", NULL, NULL);
	struct dets got;
	from_array(json_object_get(o, "detections"), &got);
	CHECK(same_dets(&ref_mono, &got, -1, "file input"), "file input = classify --mode stream");
	CHECK(json_integer_value(json_object_get(o, "last_id")) == (json_int_t)got.n, "last_id");
	int aligned = 1;
	for (size_t i = 0; i < got.n; i++) {
		double s = got.offset[i] * 16000;
		aligned &= fabs(s - round(s / 160) * 160) < 1e-3 && got.offset[i] >= got.end[i] && got.id[i] == (long long)i + 1;
	}
	CHECK(aligned, "offsets are whole hops of samples, after the end estimate; ids 1..n");
	json_decref(o);

	/* the SSE stream opened at the start saw every detection, in order */
	char acc[1 << 16] = "";
	size_t len = 0;
	char last[32];
	snprintf(last, sizeof last, "id: %zu\n", got.n);
	CHECK(sse_read_until(fd, acc, sizeof acc, &len, last, 3000), "SSE got all %zu: %s", got.n, acc);
	int in_order = 1;
	const char *q = acc;
	for (size_t i = 1; i <= got.n; i++) {
		char idl[96];
		snprintf(idl, sizeof idl, "id: %zu\nevent: detection\ndata: {\"id\":%zu,", i % 100000, i % 100000);
		const char *f = strstr(q, idl);
		in_order &= f != NULL;
		if (f)
			q = f;
	}
	CHECK(in_order, "SSE ids in order with data");
	CHECK(sse_read_until(fd, acc, sizeof acc, &len, ": heartbeat", 2000), "heartbeat");
	/* resume with Last-Event-ID: 2 */
	char acc2[1 << 16] = "";
	size_t len2 = 0;
	int fd2 = sse_open(p.port, "/v1/events", "Last-Event-ID: 2\r\n");
	CHECK(sse_read_until(fd2, acc2, sizeof acc2, &len2, last, 3000) && !strstr(acc2, "id: 2\n") &&
		      strstr(acc2, "id: 3\n"),
	      "resume after 2: %s", acc2);
	/* /metrics agrees */
	struct resp r;
	http_req(p.port, "GET", "/metrics", NULL, NULL, 0, &r);
	CHECK(strstr(r.body, "s4kws_audio_seconds_total 6.0") && strstr(r.body, "s4kws_step_seconds_count 600\n") &&
		      strstr(r.body, "s4kws_detections_total{keyword=") && strstr(r.body, "s4kws_input_up 0\n"),
	      "metrics: %s", r.body);
	free(r.body);
	/* /v1/scores: the last hop's smoothed posteriors, a distribution over the 12 labels */
	json_t *sc = get_json(p.port, "/v1/scores", NULL, NULL);
	json_t *c0 = json_array_get(json_object_get(sc, "channels"), 0);
	json_t *scores = json_object_get(c0, "scores");
	double sum = 0, best = -1;
	const char *bk = "", *key;
	json_t *val;
	json_object_foreach(scores, key, val) {
		double v = json_number_value(val);
		sum += v;
		if (v > best) {
			best = v;
			bk = key;
		}
	}
	CHECK(json_array_size(json_object_get(sc, "channels")) == 1 && json_object_size(scores) == 12 &&
		      fabs(sum - 1) < 1e-3 && json_integer_value(json_object_get(sc, "hops")) == 600 &&
		      !strcmp(jstr(c0, "top", "label"), bk),
	      "scores: 12 labels summing to %g, top %s, hops %lld", sum, bk,
	      (long long)json_integer_value(json_object_get(sc, "hops")));
	json_decref(sc);
	/* SIGTERM with two SSE clients connected: prompt, clean exit */
	int64_t t1 = client_ms();
	CHECK_EQ(stop(&p, SIGTERM), 0);
	CHECK(client_ms() - t1 < 3000, "shutdown took %lld ms", (long long)(client_ms() - t1));
	close(fd);
	close(fd2);
	/* the terminal at the default log level: a line per detection and a summary at the end */
	char want[256];
	snprintf(want, sizeof want, "info: detection %zu: %s on channel 0, score ", got.n, got.kw[got.n - 1]);
	CHECK(got.n > 0 && file_has(p.err, want), "stderr has '%s'", want);
	snprintf(want, sizeof want, "mono.wav done: 6.0 s of audio in ");
	CHECK(file_has(p.err, want), "stderr has '%s'", want);
	snprintf(want, sizeof want, "real time); %zu detection%s: ", got.n, got.n == 1 ? "" : "s");
	CHECK(file_has(p.err, want), "stderr has '%s'", want);

	/* the log: whole lines, one per detection; a restart continues the ids */
	FILE *f = fopen(path("det.jsonl"), "r");
	char line[4096];
	size_t lines = 0;
	int whole = 1;
	while (f && fgets(line, sizeof line, f)) {
		lines++;
		whole &= line[strlen(line) - 1] == '\n' && line[0] == '{';
	}
	if (f)
		fclose(f);
	CHECK(lines == got.n && whole, "log has %zu whole lines for %zu detections", lines, got.n);
	const char *args2[] = {"--input", wav, "--log", path("det.jsonl"), NULL};
	CHECK(start(&p, NULL, args2, det_args) == 0, "restart");
	json_decref(wait_state(p.port, "eof", NULL));
	o = get_json(p.port, "/v1/detections?limit=1000", NULL, NULL);
	json_t *arr = json_object_get(o, "detections");
	CHECK(json_array_size(arr) == 2 * got.n &&
		      json_integer_value(json_object_get(json_array_get(arr, (size_t)got.n), "id")) == (json_int_t)got.n + 1,
	      "history reloaded from the log and ids continue: %zu", json_array_size(arr));
	json_decref(o);
	CHECK(file_has(p.err, "continuing after detection"), "restart message");
	CHECK_EQ(stop(&p, SIGINT), 0);
}

/* A float file with a NaN and a 3e38 in it: the detections of the same file with zeros there,
 * and one warning line that says how many samples were replaced */
static void test_nonfinite_input(void)
{
	size_t n = 6 * 16000;
	float *x = make_signal(n, 16000);
	SF_INFO si = {.samplerate = 16000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT};
	x[16000] = 0.0f;
	x[40000] = 0.0f;
	SNDFILE *f = sf_open(path("zeroed.wav"), SFM_WRITE, &si);
	sf_write_float(f, x, (sf_count_t)n);
	sf_close(f);
	x[16000] = NAN;
	x[40000] = 3e38f;
	f = sf_open(path("nan.wav"), SFM_WRITE, &si);
	sf_write_float(f, x, (sf_count_t)n);
	sf_close(f);
	free(x);
	struct dets want, got;
	const char *nan_wav = path("nan.wav"), *zero_wav = path("zeroed.wav");
	for (int k = 0; k < 2; k++) {
		struct proc p;
		const char *args[] = {"--input", k ? nan_wav : zero_wav, NULL};
		CHECK(start(&p, NULL, args, det_args) == 0, "start: see %s", p.err);
		json_decref(wait_state(p.port, "eof", NULL));
		fetch_dets(p.port, k ? &got : &want);
		CHECK_EQ(stop(&p, SIGTERM), 0);
		CHECK(k == 0 || file_has(p.err, "nan.wav: 2 samples not a finite number (or beyond +-64) replaced by zeros"),
		      "the warning in %s", p.err);
	}
	CHECK(want.n > 0 && same_dets(&want, &got, -1, "NaN input"), "NaN input = zeroed input (%zu, %zu)", want.n, got.n);
	unlink(nan_wav);
	unlink(zero_wav);
}

/* Type=notify: with NOTIFY_SOCKET (a datagram socket of the test's own, as systemd makes) the
 * daemon says READY=1, pings WATCHDOG=1 at half of WATCHDOG_USEC, RELOADING=1 / READY=1 around
 * SIGHUP and STOPPING=1 on SIGTERM */
static void test_sd_notify(void)
{
	const char *sp = path("notify.sock");
	unlink(sp);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sp);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "notify socket");
	setenv("NOTIFY_SOCKET", sp, 1);
	setenv("WATCHDOG_USEC", "600000", 1);
	struct proc p;
	const char *args[] = {"--input", "none", NULL};
	int started = start(&p, NULL, args, det_args) == 0;
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	CHECK(started, "start: see %s", p.err);
	char all[4096] = "";
	size_t len = 0;
	int64_t t0 = client_ms();
	int hup = 0, stopped = 0;
	while (client_ms() - t0 < 5000 && !strstr(all, "STOPPING=1")) {
		struct pollfd pw = {fd, POLLIN, 0};
		if (poll(&pw, 1, 100) == 1) {
			ssize_t n = recv(fd, all + len, sizeof all - 1 - len, 0);
			if (n > 0) {
				len += (size_t)n;
				all[len++] = '|';
				all[len] = 0;
			}
		}
		if (!hup && strstr(all, "WATCHDOG=1")) {
			kill(p.pid, SIGHUP);
			hup = 1;
		}
		if (!stopped && strstr(all, "RELOADING=1|READY=1")) {
			CHECK_EQ(stop(&p, SIGTERM), 0); /* the datagram stays queued for us */
			stopped = 1;
		}
	}
	CHECK(!strncmp(all, "READY=1\nSTATUS=listening on 127.0.0.1 port ", 43) && strstr(all, "WATCHDOG=1") &&
		      strstr(all, "RELOADING=1|READY=1") && strstr(all, "STOPPING=1"),
	      "notifications: %s", all);
	if (!stopped)
		stop(&p, SIGKILL);
	close(fd);
	unlink(sp);
}

static long rss_kb(pid_t pid)
{
	char p[64], line[256];
	snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
	FILE *f = fopen(p, "r");
	long kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "VmRSS:", 6))
			kb = atol(line + 6);
	if (f)
		fclose(f);
	return kb;
}

/* Damaged Ogg uploads (libvorbis 1.3.7 leaks 5.8 KB on each when it decodes in the daemon):
 * every one a 4xx, and the daemon's memory flat (decoded in a child process, daemon/isolate.h) */
static void test_upload_leak(void)
{
	size_t n = 32000;
	float *x = make_signal(n, 16000);
	SF_INFO si = {.samplerate = 16000, .channels = 1, .format = SF_FORMAT_OGG | SF_FORMAT_VORBIS};
	SNDFILE *f = sf_open(path("ok.ogg"), SFM_WRITE, &si);
	sf_write_float(f, x, (sf_count_t)n);
	sf_close(f);
	free(x);
	static char body[1 << 16];
	FILE *of = fopen(path("ok.ogg"), "rb");
	size_t len = of ? fread(body, 1, sizeof body, of) : 0;
	if (of)
		fclose(of);
	for (size_t i = 200; i < 500 && i < len; i++) /* in the Vorbis setup header: refused at open */
		body[i] ^= 0x5a;
	unlink(path("ok.ogg"));
	struct proc p;
	const char *args[] = {"--input", "none", NULL};
	CHECK(start(&p, NULL, args, det_args) == 0, "start: see %s", p.err);
	long before = 0;
	int bad = 0;
	for (int i = 0; i < 420; i++) {
		if (i == 20) /* after the allocator has warmed up */
			before = rss_kb(p.pid);
		struct resp r;
		http_req(p.port, "POST", "/v1/classify", "Content-Type: audio/ogg\r\n", body, len, &r);
		if (i == 0)
			printf("damaged Ogg upload: %d %.120s\n", r.status, r.body);
		bad += r.status < 400 || r.status >= 500;
		free(r.body);
	}
	long after = rss_kb(p.pid);
	printf("400 damaged Ogg uploads: RSS %ld -> %ld KiB\n", before, after);
	CHECK(bad == 0, "%d answers were not 4xx", bad);
#ifndef __SANITIZE_ADDRESS__ /* ASan's quarantine keeps freed memory resident: RSS means nothing there */
	CHECK(before > 0 && after - before < 1024, "RSS grew %ld KiB over 400 damaged uploads", after - before);
#endif
	CHECK_EQ(stop(&p, SIGTERM), 0);
}

/* SIGTERM while POST /v1/classify computes: the answer is still sent (the server drains its
 * in-flight requests before it stops), and the daemon exits cleanly */
static void test_drain(void)
{
#ifdef __SANITIZE_ADDRESS__ /* long enough that its scan is still running when SIGTERM comes;
			      * the instrumented steppers scan 60 s in 34 s (0.7 s in a normal
			      * build), so 15 s keeps the drain inside its bound */
	size_t n = 15 * 16000;
#else
	size_t n = 240 * 16000;
#endif
	float *x = make_signal(n, 16000);
	write_wav(path("long.wav"), x, n, 1, 16000);
	free(x);
	FILE *f = fopen(path("long.wav"), "rb");
	size_t len = 2 * n + 44;
	char *body = malloc(len);
	len = f ? fread(body, 1, len, f) : 0;
	if (f)
		fclose(f);
	struct proc p;
	const char *args[] = {"--input", "none", NULL};
	CHECK(start(&p, NULL, args, det_args) == 0, "start: see %s", p.err);
	int fd = client_connect(p.port);
	char head[256];
	snprintf(head, sizeof head, "POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/wav\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n", len);
	send_all(fd, head, strlen(head));
	send_all(fd, body, len);
	usleep(300000); /* the upload is in; its scan (several seconds of audio a second) runs */
	int64_t t0 = client_ms();
	kill(p.pid, SIGTERM);
	char *raw;
	size_t got = read_all(fd, &raw, 20000);
	close(fd);
	struct resp r;
	parse_resp(raw, got, &r);
	CHECK(r.status == 200 && strstr(r.body, "\"detections\""), "answer after SIGTERM: %d %.100s", r.status, r.body);
	free(r.body);
	/* it stops by itself (a second SIGTERM would end it at once, by design) */
	int st = -1, done = 0;
	while (!done && client_ms() - t0 < 15000) {
		done = waitpid(p.pid, &st, WNOHANG) == p.pid;
		if (!done)
			usleep(20000);
	}
	CHECK(done && WIFEXITED(st) && WEXITSTATUS(st) == 0, "clean exit after the drain (status %d)", st);
	printf("SIGTERM during an upload: answered and stopped in %lld ms\n", (long long)(client_ms() - t0));
	CHECK(client_ms() - t0 < 12000, "drained and stopped in %lld ms", (long long)(client_ms() - t0));
	if (!done)
		stop(&p, SIGKILL);
	p.pid = 0;
	free(body);
	unlink(path("long.wav"));
}

static void test_stdin_and_channels(void)
{
	struct proc p;
	struct dets got;
	/* raw S16_LE on stdin */
	const char *a1[] = {"--input", "-", NULL};
	CHECK(start(&p, path("mono.raw"), a1, det_args) == 0, "start stdin");
	json_t *st = wait_state(p.port, "eof", NULL);
	CHECK(!strcmp(jstr(st, "input", "kind"), "stdin"), "kind stdin");
	json_decref(st);
	json_t *o = get_json(p.port, "/v1/detections?limit=1000", NULL, NULL);
	from_array(json_object_get(o, "detections"), &got);
	CHECK(same_dets(&ref_mono, &got, -1, "stdin"), "stdin = file");
	json_decref(o);
	CHECK(!file_has(p.err, "inside a frame"), "whole frames: no warning");
	stop(&p, SIGTERM);

	/* 3 bytes: one frame and a half; the half is reported, not silently dropped */
	FILE *f3 = fopen(path("odd.raw"), "wb");
	CHECK(f3 && fwrite("\x01\x00\x02", 1, 3, f3) == 3 && fclose(f3) == 0, "write odd.raw");
	CHECK(start(&p, path("odd.raw"), a1, det_args) == 0, "start stdin, 3 bytes");
	st = wait_state(p.port, "eof", NULL);
	CHECK(jnum(st, "input", "frames") == 1, "one frame read: %g", jnum(st, "input", "frames"));
	json_decref(st);
	CHECK(file_has(p.err, "stdin ended inside a frame: its last 1 byte"), "odd byte reported (%s)", p.err);
	stop(&p, SIGTERM);

	/* two channels: silence on 0, the signal on 1 */
	const char *a2[] = {"--input", path("stereo.wav"), NULL};
	CHECK(start(&p, NULL, a2, det_args) == 0, "start stereo");
	json_decref(wait_state(p.port, "eof", NULL));
	o = get_json(p.port, "/v1/detections?channel=1&limit=1000", NULL, NULL);
	from_array(json_object_get(o, "detections"), &got);
	CHECK(same_dets(&ref_mono, &got, 1, "stereo channel 1"), "channel 1 = mono");
	json_decref(o);
	struct dets ref2;
	reference(path("stereo.wav"), &ref2);
	o = get_json(p.port, "/v1/detections?limit=1000", NULL, NULL);
	from_array(json_object_get(o, "detections"), &got);
	CHECK(same_dets(&ref2, &got, -1, "stereo"), "both channels = classify --channels each");
	json_decref(o);
	stop(&p, SIGTERM);

	/* the same with every thread count: same detections, same id order */
	struct dets by_threads[3];
	const char *nthreads[3] = {"1", "2", "5"};
	for (int t = 0; t < 3; t++) {
		const char *a[] = {"--input", path("stereo.wav"), "--inference-threads", nthreads[t], NULL};
		CHECK(start(&p, NULL, a, det_args) == 0, "start stereo, %s threads", nthreads[t]);
		st = wait_state(p.port, "eof", NULL);
		CHECK(json_integer_value(json_object_get(st, "inference_threads")) == (t == 0 ? 1 : 2),
		      "status: inference_threads for --inference-threads %s", nthreads[t]);
		json_decref(st);
		o = get_json(p.port, "/v1/detections?limit=1000", NULL, NULL);
		from_array(json_object_get(o, "detections"), &by_threads[t]);
		json_decref(o);
		stop(&p, SIGTERM);
		int same = by_threads[t].n == ref2.n && by_threads[t].n == by_threads[0].n;
		for (size_t i = 0; same && i < by_threads[t].n; i++)
			same = !strcmp(by_threads[t].kw[i], by_threads[0].kw[i]) &&
			       by_threads[t].ch[i] == by_threads[0].ch[i] &&
			       by_threads[t].id[i] == by_threads[0].id[i] &&
			       by_threads[t].end[i] == by_threads[0].end[i];
		CHECK(same, "--inference-threads %s: the detections and their id order of one thread", nthreads[t]);
	}

	/* 48 kHz input is resampled to the model rate */
	const char *a3[] = {"--input", path("mono48k.wav"), NULL};
	CHECK(start(&p, NULL, a3, det_args) == 0, "start 48k");
	st = wait_state(p.port, "eof", NULL);
	CHECK(json_integer_value(json_object_get(json_object_get(st, "input"), "rate")) == 48000 &&
		      fabs(json_number_value(json_object_get(st, "audio_s")) - 6.0) < 0.011,
	      "48 kHz: audio_s %g", json_number_value(json_object_get(st, "audio_s")));
	CHECK(file_has(p.err, "resampled to 16000 Hz"), "resampling logged");
	json_decref(st);
	stop(&p, SIGTERM);
}

static void test_alsa_device(void)
{
	/* the real PortAudio path: an ALSA file PCM replaying the same samples, stopped by --duration */
	const char *conf = path("asound.conf");
	FILE *f = fopen(conf, "w");
	fprintf(f, "pcm.kwsfile {\n type file\n slave.pcm { type null }\n file \"/dev/null\"\n"
		   " infile \"%s\"\n format \"raw\"\n}\npcm.!default \"kwsfile\"\n",
		path("mono_padded.raw"));
	fclose(f);
	setenv("ALSA_CONFIG_PATH", conf, 1);
	struct proc p;
	const char *a[] = {"--device", "kwsfile", "--duration", "6", "--frames-per-buffer", "320", "--ring-ms", "10000", NULL};
	CHECK(start(&p, NULL, a, det_args) == 0, "start device: see %s", p.err);
	json_t *st = wait_state(p.port, "eof", NULL);
	CHECK(st && !strcmp(jstr(st, "input", "state"), "eof") && !strcmp(jstr(st, "input", "name"), "kwsfile") &&
		      !strcmp(jstr(st, "input", "kind"), "device"),
	      "device at eof after --duration");
	CHECK_NEAR(json_number_value(json_object_get(st, "audio_s")), 6.0, 0.011);
	CHECK_EQ(json_integer_value(json_object_get(st, "overruns")), 0);
	json_decref(st);
	json_t *o = get_json(p.port, "/v1/detections?limit=1000", NULL, NULL);
	struct dets got;
	from_array(json_object_get(o, "detections"), &got);
	CHECK(same_dets(&ref_mono, &got, -1, "ALSA device"), "device capture = file (bit-exact capture)");
	json_decref(o);
	CHECK_EQ(stop(&p, SIGTERM), 0);

	/* `s4kws devices` lists it */
	char cmd[700];
	snprintf(cmd, sizeof cmd, "'%s' devices 2>/dev/null", bin);
	FILE *pf = popen(cmd, "r");
	char buf[8192] = "";
	size_t n = fread(buf, 1, sizeof buf - 1, pf);
	buf[n] = 0;
	CHECK(pclose(pf) == 0 && strstr(buf, "kwsfile") && strstr(buf, "16000"), "devices: %s", buf);

	/* a device that does not exist: HTTP serves, status says error, retries go on */
	const char *b[] = {"--device", "no-such-mic", "--retry-max", "0.3", NULL};
	CHECK(start(&p, NULL, b, NULL) == 0, "start with a missing device");
	usleep(1500000);
	int code;
	st = get_json(p.port, "/v1/status", NULL, &code);
	const char *e = jstr(st, "input", "error");
	CHECK(code == 200 && !strcmp(jstr(st, "input", "state"), "error") && e && strstr(e, "no-such-mic") &&
		      json_integer_value(json_object_get(json_object_get(st, "input"), "retries")) >= 2,
	      "missing device reported with retries");
	json_decref(st);
	struct resp r;
	http_req(p.port, "GET", "/healthz", NULL, NULL, 0, &r);
	CHECK_EQ(r.status, 200);
	free(r.body);
	CHECK(file_has(p.err, "retrying in"), "logged");
	CHECK_EQ(stop(&p, SIGTERM), 0);
	unsetenv("ALSA_CONFIG_PATH");
}

/* ---- a microphone that goes quiet: an ALSA file PCM reading a FIFO ---- */

struct feeder {
	int fd;                    /* the FIFO, O_RDWR | O_NONBLOCK */
	const int16_t *x;          /* audio to loop over */
	size_t n;
	_Atomic int on, stop;
	pthread_t t;
};

/* Write one 320-frame period (640 bytes: one atomic pipe write) every 20 ms while `on`: a
 * device delivering audio at about real time. Paused, it writes nothing but keeps the FIFO
 * open, so the capture blocks in read() as on a device that went quiet. */
static void *feeder_main(void *arg)
{
	struct feeder *f = arg;
	size_t pos = 0;
	while (!atomic_load(&f->stop)) {
		if (atomic_load(&f->on)) {
			if (pos + 320 > f->n)
				pos = 0;
			if (write(f->fd, f->x + pos, 640) == 640)
				pos += 320;
		}
		usleep(20000);
	}
	return NULL;
}

/* Poll /v1/status until audio_s >= want (timeout_s); returns the last audio_s. */
static double wait_audio(int port, double want, double timeout_s)
{
	double a = -1;
	int64_t t0 = client_ms();
	while (client_ms() - t0 < (int64_t)(timeout_s * 1000)) {
		json_t *o = get_json(port, "/v1/status", NULL, NULL);
		a = jnum(o, "audio_s", NULL);
		json_decref(o);
		if (a >= want)
			break;
		usleep(50000);
	}
	return a;
}

static void test_device_stall(void)
{
	char fifo[600];
	snprintf(fifo, sizeof fifo, "%s", path("mic.fifo"));
	CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
	/* O_RDWR: a writer always exists, so opening the PCM (PortAudio probes it at every rescan)
	 * never blocks, and the capture never sees EOF (after which the plugin returns garbage) */
	struct feeder f = {.fd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC)};
	CHECK(f.fd >= 0, "open the FIFO");
	FILE *rf = fopen(path("mono.raw"), "rb");
	static int16_t audio[96000];
	f.n = rf ? fread(audio, 2, 96000, rf) : 0;
	f.x = audio;
	if (rf)
		fclose(rf);
	const char *conf = path("asound.conf");
	FILE *cf = fopen(conf, "w");
	fprintf(cf, "pcm.kwsfile {\n type file\n slave.pcm { type null }\n file \"/dev/null\"\n"
		    " infile \"%s\"\n format \"raw\"\n}\npcm.!default \"kwsfile\"\n", fifo);
	fclose(cf);
	setenv("ALSA_CONFIG_PATH", conf, 1);
	atomic_store(&f.on, 1);
	pthread_create(&f.t, NULL, feeder_main, &f);
	struct proc p;
	const char *a[] = {"--device", "kwsfile", "--device-stall", "1", "--retry-max", "0.5", NULL};
	CHECK(start(&p, NULL, a, NULL) == 0, "start on the FIFO device: see %s", p.err);

	/* 1. live */
	json_t *st = wait_state(p.port, "running", NULL);
	CHECK(st && !strcmp(jstr(st, "input", "state"), "running") && !strcmp(jstr(st, "input", "name"), "kwsfile"),
	      "running on the FIFO device");
	json_decref(st);
	double a1 = wait_audio(p.port, 1.0, 10);
	CHECK(a1 >= 1.0, "audio flows: %g s", a1);

	/* 2. quiet: error after --device-stall, retried, HTTP keeps serving */
	atomic_store(&f.on, 0);
	int64_t t0 = client_ms();
	st = wait_state(p.port, "error", NULL);
	int64_t dt = client_ms() - t0;
	const char *e = jstr(st, "input", "error");
	CHECK(st && !strcmp(jstr(st, "input", "state"), "error") && e && strstr(e, "no audio from 'kwsfile'"),
	      "stall reported: %s", e ? e : "(no error)");
	CHECK(dt >= 900 && dt < 6000, "stall reported after %lld ms (--device-stall 1)", (long long)dt);
	double a_quiet = jnum(st, "audio_s", NULL);
	json_decref(st);
	json_int_t retries = 0;
	int code = 0, all_error = 1;
	t0 = client_ms();
	while (retries < 3 && client_ms() - t0 < 10000) {
		st = get_json(p.port, "/v1/status", NULL, &code);
		retries = json_integer_value(json_object_get(json_object_get(st, "input"), "retries"));
		all_error &= code == 200 && !strcmp(jstr(st, "input", "state"), "error");
		json_decref(st);
		usleep(100000);
	}
	CHECK(retries >= 3 && all_error, "retried %lld times while quiet, status 200 and 'error' throughout",
	      (long long)retries);
	struct resp r;
	http_req(p.port, "GET", "/healthz", NULL, NULL, 0, &r);
	CHECK_EQ(r.status, 200);
	free(r.body);
	http_req(p.port, "GET", "/metrics", NULL, NULL, 0, &r);
	CHECK(r.status == 200 && strstr(r.body, "s4kws_input_up 0\n") &&
		      !strstr(r.body, "s4kws_input_retries_total 0\n"),
	      "metrics while quiet: %s", r.body);
	free(r.body);
	st = get_json(p.port, "/v1/status", NULL, NULL);
	CHECK(jnum(st, "audio_s", NULL) < a_quiet + 0.1, "no audio while quiet: %g then %g", a_quiet,
	      jnum(st, "audio_s", NULL));
	json_decref(st);

	/* 3. back: reopened, running, audio counts on */
	atomic_store(&f.on, 1);
	st = wait_state(p.port, "running", NULL);
	CHECK(st && !strcmp(jstr(st, "input", "state"), "running") &&
		      json_is_null(json_object_get(json_object_get(st, "input"), "error")),
	      "running again, error cleared");
	json_decref(st);
	double a2 = wait_audio(p.port, a_quiet + 1.0, 10);
	CHECK(a2 >= a_quiet + 1.0, "audio flows again: %g s after %g s", a2, a_quiet);
	CHECK(file_has(p.err, "no audio from 'kwsfile'") && file_has(p.err, "retrying in") &&
		      file_has(p.err, "'kwsfile' delivers audio again"),
	      "stall, retries and recovery logged (%s)", p.err);

	/* 4. SIGTERM while the capture thread is blocked in the driver: prompt, clean exit */
	atomic_store(&f.on, 0);
	usleep(300000);
	t0 = client_ms();
	CHECK_EQ(stop(&p, SIGTERM), 0);
	CHECK(client_ms() - t0 < 4000, "shutdown took %lld ms", (long long)(client_ms() - t0));

	atomic_store(&f.stop, 1);
	pthread_join(f.t, NULL);
	close(f.fd);
	unlink(fifo);
	unsetenv("ALSA_CONFIG_PATH");
}

/* POST FILE to URL (bearer token "abc") and compare the answer with `s4kws classify --format
 * json EXTRA FILE` less its "file" key; dets: a recording, whose first detection must carry an
 * offset. Returns the answer as sorted JSON text (caller frees) or NULL. */

int main(int argc, char **argv)
{
	int rc = listen_setup(argc, argv, "test_listen");
	if (rc)
		return rc;
	test_file_input();
	test_nonfinite_input();
	test_sd_notify();
	test_drain();
	test_upload_leak();
	test_stdin_and_channels();
	test_alsa_device();
	test_device_stall();
	return listen_cleanup();
}
