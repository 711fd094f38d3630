/* test_listen_api.c - black-box tests of `s4kws listen`: what it does with detections and requests.
 *
 * usage: test_listen_api S4KWS_BINARY MODEL
 *
 * Each case starts the real binary (listen_harness.h) on the test signal and compares with
 * `s4kws classify --mode stream` over the same audio:
 *   - non-loopback binds need --token; POST /v1/classify matches `s4kws classify` for a clip
 *     and refuses damaged or foreign data; SIGHUP keeps the old settings when the new file is
 *     invalid and applies a valid one; --help and bad flags;
 *   - --save-dir keeps a WAV per detection; --dedup-ms reports the same word on two channels
 *     once;
 *     --verify confirms or rejects each candidate as a lone clip;
 *   - --on-detect runs a command per detection (detection on stdin and in the environment,
 *     failures counted, a hung command killed after its timeout, shutdown bounded);
 *   - mute over HTTP (detections counted, not published); thresholds from flags, from the
 *     model file, and flags beating the file; --channel-names on every detection.
 */
#include "listen_harness.h"

static char *upload_matches(int port, const char *url, const char *file, const char *extra, int dets)
{
	static char body[1 << 20];
	FILE *cf = fopen(file, "rb");
	size_t blen = cf ? fread(body, 1, sizeof body, cf) : 0;
	if (cf)
		fclose(cf);
	struct resp r;
	http_req(port, "POST", url, "Authorization: Bearer abc\r\nContent-Type: audio/wav\r\n", body, blen, &r);
	json_error_t je;
	json_t *got = json_loads(r.body, 0, &je);
	char cmd[1600];
	snprintf(cmd, sizeof cmd, "'%s' classify --model '%s' --format json %s '%s' 2>/dev/null", bin, model, extra,
		 file);
	FILE *pf = popen(cmd, "r");
	static char line[1 << 14];
	if (!fgets(line, sizeof line, pf))
		line[0] = 0;
	pclose(pf);
	json_t *want = json_loads(line, 0, &je);
	json_object_del(want, "file");
	char *gs = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(6));
	char *ws = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(6));
	json_t *d0 = json_array_get(json_object_get(got, "detections"), 0);
	CHECK(r.status == 200 && gs && ws && !strcmp(gs, ws) && (!dets || json_is_number(json_object_get(d0, "offset"))),
	      "upload %s of %s (%d):\n got  %s\n want %s", url, file, r.status, gs, ws);
	free(ws);
	json_decref(got);
	json_decref(want);
	free(r.body);
	return gs;
}

static void test_auth_classify_reload(void)
{
	struct proc p;
	/* non-loopback bind without a token is refused at start */
	const char *a0[] = {"--input", path("mono.wav"), "--bind", "0.0.0.0", NULL};
	CHECK(start(&p, NULL, a0, NULL) != 0, "0.0.0.0 without --token refused");
	CHECK(file_has(p.err, "token"), "one sentence about the token");
	/* a missing input file is named; a threshold for a label the model lacks is a usage error */
	const char *a1[] = {"--input", "/nonexistent/in.wav", NULL};
	CHECK(start(&p, NULL, a1, NULL) != 0 && file_has(p.err, "--input /nonexistent/in.wav: cannot open"),
	      "missing input named: see %s", p.err);
	const char *a2[] = {"--input", path("mono.wav"), "--threshold", "maybe=0.5", NULL};
	CHECK(start(&p, NULL, a2, NULL) != 0 && file_has(p.err, "threshold: 'maybe' is not a keyword"),
	      "unknown keyword: see %s", p.err);
	/* an IPv6 address is written in brackets in the URL it logs (where ::1 exists) */
	const char *a3[] = {"--input", path("mono.wav"), "--bind", "::1", NULL};
	if (start(&p, NULL, a3, NULL) == 0) {
		CHECK(file_has(p.err, "http://[::1]:"), "bracketed URL: see %s", p.err);
		CHECK_EQ(stop(&p, SIGTERM), 0);
	}

	const char *conf = path("s4kws.conf");
	FILE *f = fopen(conf, "w");
	fprintf(f, "# test config\nthreshold = 0.2\nrequire-top = false\nrefractory-ms = 300\ntoken = abc\nbind = 0.0.0.0\n");
	fclose(f);
	const char *a[] = {"--input", path("mono.wav"), "--config", conf, NULL};
	CHECK(start(&p, NULL, a, NULL) == 0, "start with --config: %s", p.err);
	int code;
	json_t *o = get_json(p.port, "/v1/status", NULL, &code);
	CHECK_EQ(code, 401);
	json_decref(o);
	o = get_json(p.port, "/v1/status", "Authorization: Bearer abc\r\n", &code);
	CHECK_EQ(code, 200);
	json_decref(o);

	/* POST /v1/classify: a 1 s clip gives the same record as `s4kws classify --format json`;
	 * ?max_rate=8000 the same as --max-rate 8000 (and, on a 16 kHz clip, not the same as
	 * without it); a 6 s recording: detections, the same as `s4kws classify` with the same
	 * settings */
	char *plain = upload_matches(p.port, "/v1/classify", path("clip.wav"), "--top 3", 0);
	char *lim = upload_matches(p.port, "/v1/classify?max_rate=8000", path("clip.wav"), "--top 3 --max-rate 8000", 0);
	CHECK(plain && lim && strcmp(plain, lim), "?max_rate=8000 changed nothing:\n %s\n %s", plain, lim);
	free(plain);
	free(lim);
	char extra[600];
	snprintf(extra, sizeof extra, "--config '%s'", conf);
	free(upload_matches(p.port, "/v1/classify", path("mono.wav"), extra, 1));
	/* damaged uploads: foreign data, a WAV cut to 2000 bytes, nothing */
	struct resp r;
	static char body[1 << 20];
	FILE *cf = fopen(path("mono.wav"), "rb");
	CHECK(cf && fread(body, 1, sizeof body, cf) > 2000, "read mono.wav");
	if (cf)
		fclose(cf);
	http_req(p.port, "POST", "/v1/classify", "Authorization: Bearer abc\r\n", "hello, not audio", 16, &r);
	CHECK(r.status == 415 && strstr(r.body, "\"error\""), "foreign data: %d %s", r.status, r.body);
	free(r.body);
	http_req(p.port, "POST", "/v1/classify", "Authorization: Bearer abc\r\n", body, 2000, &r);
	CHECK(r.status == 400 && strstr(r.body, "truncated"), "truncated WAV: %d %s", r.status, r.body);
	free(r.body);
	http_req(p.port, "POST", "/v1/classify", "Authorization: Bearer abc\r\n", body, 0, &r);
	CHECK_EQ(r.status, 400);
	free(r.body);

	/* SIGHUP: an invalid file keeps the old settings; a valid one is applied */
	f = fopen(conf, "w");
	fprintf(f, "threshold = 7\ntoken = abc\nbind = 0.0.0.0\n");
	fclose(f);
	kill(p.pid, SIGHUP);
	usleep(400000);
	CHECK(file_has(p.err, "keeping the old one") && file_has(p.err, "threshold: 7 is out of range"),
	      "invalid reload refused in one sentence");
	o = get_json(p.port, "/v1/status", "Authorization: Bearer abc\r\n", &code);
	CHECK_EQ(code, 200);
	json_decref(o);
	/* a file starting with a NUL byte is refused too (it read as empty: all defaults) */
	f = fopen(conf, "wb");
	fwrite("\0threshold = 0.5\n", 1, 17, f);
	fclose(f);
	kill(p.pid, SIGHUP);
	usleep(400000);
	CHECK(file_has(p.err, ":1: a NUL byte"), "NUL reload refused in one sentence");
	o = get_json(p.port, "/v1/status", "Authorization: Bearer abc\r\n", &code);
	CHECK_EQ(code, 200); /* the token is still required: the old settings are kept */
	json_decref(o);
	o = get_json(p.port, "/v1/status", NULL, &code);
	CHECK_EQ(code, 401);
	json_decref(o);
	f = fopen(conf, "w");
	fprintf(f, "threshold = 0.9\nthreshold.yes = 0.95\ntoken = abc\nbind = 0.0.0.0\n");
	fclose(f);
	kill(p.pid, SIGHUP);
	usleep(400000);
	CHECK(file_has(p.err, "detection settings reloaded from"), "valid reload applied");
	CHECK_EQ(stop(&p, SIGTERM), 0);

	/* --help and bad flags */
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "'%s' listen --help", bin);
	FILE *pf = popen(cmd, "r");
	size_t n = fread(body, 1, sizeof body - 1, pf);
	body[n] = 0;
	CHECK(pclose(pf) == 0 && strstr(body, "--threshold") && strstr(body, "--token") && strstr(body, "--input"),
	      "--help");
	/* with stderr the journal stream (JOURNAL_STREAM = its device:inode), lines carry syslog
	 * priorities ("<6>info: ..."); a JOURNAL_STREAM of another file changes nothing */
	const char *jf = path("journal.txt");
	snprintf(cmd, sizeof cmd, ": > '%s'; JOURNAL_STREAM=$(stat -c %%d:%%i '%s') timeout 2 '%s' listen --model '%s' "
		 "--input none --port 0 2>> '%s'; JOURNAL_STREAM=1:2 timeout 2 '%s' listen --model '%s' --input none "
		 "--port 0 2>> '%s'", jf, jf, bin, model, jf, bin, model, jf);
	CHECK(system(cmd) != -1, "journal run");
	CHECK(file_has(jf, "<6>info: model "), "journal priorities: see %s", jf);
	CHECK(file_has(jf, "]: info: model "), "plain lines elsewhere: see %s", jf);
	unlink(jf);
	/* `s4kws devices` says what it found, without ALSA's and JACK's probing chatter (about a
	 * hundred lines on a machine without a sound card) */
	snprintf(cmd, sizeof cmd, "'%s' devices 2>&1", bin);
	pf = popen(cmd, "r");
	n = fread(body, 1, sizeof body - 1, pf);
	body[n] = 0;
	pclose(pf);
	CHECK(!strstr(body, "ALSA lib") && !strstr(body, "Jack") && !strstr(body, "jack server"),
	      "devices: library chatter: %.300s", body);
	snprintf(cmd, sizeof cmd, "'%s' listen --port 99999 2>/dev/null", bin);
	CHECK(WEXITSTATUS(system(cmd)) == 2, "bad flag: exit 2");
	snprintf(cmd, sizeof cmd, "'%s' listen --model '%s' --threshold nosuchword=0.5 2>/dev/null", bin, model);
	CHECK(WEXITSTATUS(system(cmd)) == 2, "unknown keyword: a usage error, exit 2");
}

/* --save-dir: one WAV per detection holding exactly the samples around its decision point, on
 * the detection's own channel; the detection JSON in its comment; a bad folder refused. */
static void test_save_dir(void)
{
	struct proc p;
	char cdir[600];
	snprintf(cdir, sizeof cdir, "%s/clips", dir);
	CHECK(mkdir(cdir, 0700) == 0, "mkdir %s", cdir);
	const char *a[] = {"--input", path("stereo.wav"), "--save-dir", cdir, "--save-pre-ms", "1000",
			   "--save-post-ms", "300", NULL};
	CHECK(start(&p, NULL, a, det_args) == 0, "start with --save-dir: %s", p.err);
	json_decref(wait_state(p.port, "eof", NULL));
	struct dets got;
	fetch_dets(p.port, &got);
	CHECK(got.n >= 3, "%zu detections", got.n);
	json_int_t saved = -1;
	for (int i = 0; i < 100 && saved != (json_int_t)got.n; i++) {
		json_t *o = get_json(p.port, "/v1/status", NULL, NULL);
		saved = json_integer_value(json_object_get(json_object_get(o, "clips"), "saved"));
		json_decref(o);
		usleep(50000);
	}
	CHECK(saved == (json_int_t)got.n, "status: %lld clips saved for %zu detections", (long long)saved, got.n);
	CHECK(metrics_have(p.port, "s4kws_clips_saved_total", got.n, "s4kws_clips_dropped_total", 0),
	      "metrics count the clips");
	CHECK_EQ(stop(&p, SIGTERM), 0);

	SF_INFO si = {0};
	SNDFILE *sf = sf_open(path("stereo.wav"), SFM_READ, &si);
	float *all = malloc((size_t)si.frames * 2 * sizeof *all);
	CHECK(sf && all && sf_readf_float(sf, all, si.frames) == si.frames, "read stereo.wav");
	sf_close(sf);
	size_t files = 0;
	for (size_t i = 0; i < got.n && all; i++) {
		char pat[800];
		snprintf(pat, sizeof pat, "%s/*-%lld-%s-ch%d.wav", cdir, got.id[i], got.kw[i], got.ch[i]);
		glob_t g;
		int found = glob(pat, 0, NULL, &g) == 0 && g.gl_pathc == 1;
		CHECK(found, "one clip for detection %lld (%s)", got.id[i], pat);
		if (!found) {
			globfree(&g);
			continue;
		}
		SF_INFO ci = {0};
		SNDFILE *cf = sf_open(g.gl_pathv[0], SFM_READ, &ci);
		long long at = llround(got.offset[i] * 16000), a0 = at - 16000 > 0 ? at - 16000 : 0;
		long long b0 = at + 4800 < si.frames ? at + 4800 : si.frames;
		CHECK(cf && ci.samplerate == 16000 && ci.channels == 1 && ci.frames == b0 - a0,
		      "clip %s: %d Hz, %d ch, %lld frames (want %lld)", g.gl_pathv[0], ci.samplerate, ci.channels,
		      (long long)ci.frames, b0 - a0);
		float *c = malloc((size_t)(ci.frames > 0 ? ci.frames : 1) * sizeof *c);
		double err = 0;
		if (cf && c && sf_readf_float(cf, c, ci.frames) == ci.frames)
			for (sf_count_t j = 0; j < ci.frames; j++)
				err = fmax(err, fabs(c[j] - all[(a0 + j) * 2 + got.ch[i]]));
		else
			err = 1;
		CHECK(err <= 1.0 / 32768 + 1e-6, "clip %lld: the detection's samples (max error %g)", got.id[i], err);
		const char *cm = cf ? sf_get_string(cf, SF_STR_COMMENT) : NULL;
		char idk[40];
		snprintf(idk, sizeof idk, "\"id\":%lld,", got.id[i]);
		CHECK(cm && strstr(cm, idk) && strstr(cm, got.kw[i]), "clip comment: %s", cm ? cm : "(none)");
		if (cf)
			sf_close(cf);
		free(c);
		unlink(g.gl_pathv[0]);
		files++;
		globfree(&g);
	}
	free(all);
	CHECK(rmdir(cdir) == 0, "no other files in %s (%zu clips checked)", cdir, files);

	const char *b[] = {"--input", path("mono.wav"), "--save-dir", "/nonexistent/clips", NULL};
	CHECK(start(&p, NULL, b, det_args) != 0, "a missing --save-dir is refused at start");
	CHECK(file_has(p.err, "save-dir /nonexistent/clips: No such file or directory"), "one sentence (%s)", p.err);
}

/* --dedup-ms: the same word on both channels is reported once, on channel 0; the rest counted */
static void test_dedup(void)
{
	struct proc p;
	for (int on = 0; on < 2; on++) {
		const char *a[] = {"--input", path("both.wav"), "--dedup-ms", on ? "500" : "0", NULL};
		CHECK(start(&p, NULL, a, det_args) == 0, "start, dedup %d", on);
		json_t *st = wait_state(p.port, "eof", NULL);
		json_int_t dd = json_integer_value(json_object_get(st, "deduplicated"));
		json_decref(st);
		struct dets got;
		fetch_dets(p.port, &got);
		CHECK(metrics_have(p.port, "s4kws_deduplicated_total", (unsigned long long)dd, NULL, 0),
		      "metrics: %lld deduplicated", (long long)dd);
		CHECK_EQ(stop(&p, SIGTERM), 0);
		if (!on) {
			CHECK(got.n == 2 * ref_mono.n && dd == 0, "no dedup: %zu detections (2 x %zu), %lld left out",
			      got.n, ref_mono.n, (long long)dd);
			continue;
		}
		CHECK(same_dets(&ref_mono, &got, -1, "dedup") && dd == (json_int_t)ref_mono.n,
		      "dedup: the mono detections, all on channel 0; %lld left out", (long long)dd);
		int ch0 = 1;
		for (size_t i = 0; i < got.n; i++)
			ch0 &= got.ch[i] == 0;
		CHECK(ch0, "dedup: channel 0 wins ties");
	}
}

/* --verify: the live detector's second opinion agrees with file mode's (classify --mode stream
 * with the same flags): the same detections, decided once the window after the estimated end
 * had arrived (the first one at the stream's first whole window); the candidates it rejects are
 * counted in status and metrics, and with the confirmed ones they add up to the unverified
 * reference's; --verify 1 (a lone-clip probability of 1 does not happen on this model) leaves none. */
static void test_verify(void)
{
	const char *const vals[] = {"0.001", "1"};
	for (int i = 0; i < 2; i++) {
		/* onset 0.99: each end estimate just before its crossing (this model's score never
		 * drops below the default onset), so the candidates are judged on different windows */
		const char *va[] = {"--verify", vals[i], "--verify-after-ms", "200", "--onset", "0.99", NULL};
		struct dets want, got;
		reference_with(path("mono.wav"), va, &want);
		const char *a[] = {"--input", path("mono.wav"), "--verify", vals[i], "--verify-after-ms", "200",
				   "--onset", "0.99", NULL};
		struct proc p;
		CHECK(start(&p, NULL, a, det_args) == 0, "start, verify %s", vals[i]);
		json_t *st = wait_state(p.port, "eof", NULL);
		json_int_t rej = json_integer_value(json_object_get(st, "verify_rejected"));
		json_decref(st);
		fetch_dets(p.port, &got);
		CHECK(metrics_have(p.port, "s4kws_verify_rejected_total", (unsigned long long)rej, NULL, 0),
		      "metrics: %lld rejected", (long long)rej);
		CHECK_EQ(stop(&p, SIGTERM), 0);
		CHECK(same_dets(&want, &got, -1, "verify"), "verify %s: the file-mode reference's detections", vals[i]);
		CHECK(got.n + (size_t)rej == ref_mono.n, "verify %s: %zu confirmed + %lld rejected = %zu candidates",
		      vals[i], got.n, (long long)rej, ref_mono.n);
		for (size_t j = 0; j < got.n; j++) {
			CHECK(got.offset[j] >= got.end[j] + 0.2 - 1e-3, "decided at %.3f s, after the window "
			      "ending %.3f s", got.offset[j], got.end[j] + 0.2);
			CHECK(got.verify[j] >= 0.001 && fabs(got.verify[j] - want.verify[j]) < 1e-3,
			      "its second opinion %g (file mode %g)", got.verify[j], want.verify[j]);
		}
		for (size_t j = 0; j < ref_mono.n; j++)
			CHECK(ref_mono.verify[j] == 0, "no verify key without --verify");
		if (i == 0)
			CHECK(got.n > 0, "verify %s: some confirmed (%zu)", vals[i], got.n);
		else
			CHECK(got.n == 0 && rej > 0, "verify 1: %zu detections, %lld rejected", got.n, (long long)rej);
	}
}

/* /v1/mute: with detections muted, the same audio (stdin through a FIFO, so that the mute is in
 * place before any audio) gives no detection, and every one the reference finds is counted as
 * muted; DELETE unmutes; a timed mute ends by itself; bad requests get 400 / 405. */
/* Start the daemon reading raw stdin from a FIFO that nothing is written to yet: the caller
 * changes settings first, then feed_fifo() sends mono.raw and ends the input. */
static int start_fifo(struct proc *p, const char *name, int *w)
{
	const char *fifo = path(name);
	unlink(fifo);
	CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
	*w = open(fifo, O_RDWR | O_CLOEXEC); /* the daemon's open for reading does not block */
	const char *a[] = {"--input", "-", NULL};
	return *w >= 0 && start(p, fifo, a, det_args) == 0 ? 0 : -1;
}

static void feed_fifo(int w)
{
	FILE *f = fopen(path("mono.raw"), "rb");
	static char buf[1 << 16];
	size_t n;
	while (f && (n = fread(buf, 1, sizeof buf, f)) > 0)
		CHECK(write(w, buf, n) == (ssize_t)n, "write to the FIFO");
	if (f)
		fclose(f);
	close(w);
}

static void test_mute(void)
{
	struct proc p;
	int w;
	CHECK(start_fifo(&p, "mute.fifo", &w) == 0, "start on a FIFO: %s", p.err);
	struct resp r;
	http_req(p.port, "POST", "/v1/mute", NULL, NULL, 0, &r);
	CHECK(r.status == 200 && r.body && strstr(r.body, "\"muted\":true") && strstr(r.body, "\"remaining_s\":null"),
	      "POST /v1/mute: %d %s", r.status, r.body ? r.body : "");
	free(r.body);
	feed_fifo(w);
	json_t *st = wait_state(p.port, "eof", NULL);
	json_int_t muted = json_integer_value(json_object_get(st, "muted_detections"));
	CHECK(json_is_true(json_object_get(json_object_get(st, "mute"), "muted")), "status says muted");
	json_decref(st);
	json_t *o = get_json(p.port, "/v1/detections?limit=1000", NULL, NULL);
	size_t nd = json_array_size(json_object_get(o, "detections"));
	json_decref(o);
	CHECK(nd == 0 && muted == (json_int_t)ref_mono.n, "muted: %zu detections published, %lld muted (want 0, %zu)",
	      nd, (long long)muted, ref_mono.n);
	CHECK(metrics_have(p.port, "s4kws_muted_detections_total", ref_mono.n, "s4kws_muted", 1), "metrics: muted");
	http_req(p.port, "DELETE", "/v1/mute", NULL, NULL, 0, &r);
	CHECK(r.status == 200 && r.body && strstr(r.body, "\"muted\":false"), "DELETE /v1/mute: %s", r.body ? r.body : "");
	free(r.body);
	http_req(p.port, "POST", "/v1/mute?seconds=0.4", NULL, NULL, 0, &r);
	json_error_t je;
	o = r.body ? json_loads(r.body, 0, &je) : NULL;
	double rem = json_number_value(json_object_get(o, "remaining_s"));
	CHECK(r.status == 200 && json_is_true(json_object_get(o, "muted")) && rem > 0 && rem <= 0.4,
	      "POST /v1/mute?seconds=0.4: %s", r.body ? r.body : "");
	json_decref(o);
	free(r.body);
	usleep(600000);
	http_req(p.port, "GET", "/v1/mute", NULL, NULL, 0, &r);
	CHECK(r.status == 200 && r.body && strstr(r.body, "\"muted\":false"), "a timed mute ends: %s", r.body ? r.body : "");
	free(r.body);
	http_req(p.port, "POST", "/v1/mute?seconds=-3", NULL, NULL, 0, &r);
	CHECK(r.status == 400 && r.body && strstr(r.body, "seconds"), "bad seconds: %d", r.status);
	free(r.body);
	/* one number syntax (no hex: 0x10 was 16 s) and no mute too short to mean anything */
	static const char *const bad_secs[] = {"0x10", "1e-300", "inf", "nan", "5s", ""};
	for (size_t i = 0; i < sizeof bad_secs / sizeof bad_secs[0]; i++) {
		char url[64];
		snprintf(url, sizeof url, "/v1/mute?seconds=%s", bad_secs[i]);
		http_req(p.port, "POST", url, NULL, NULL, 0, &r);
		CHECK(r.status == 400, "%s: %d", url, r.status);
		free(r.body);
	}
	http_req(p.port, "GET", "/v1/mute", NULL, NULL, 0, &r);
	CHECK(r.status == 200 && r.body && strstr(r.body, "\"muted\":false"), "still not muted: %s", r.body ? r.body : "");
	free(r.body);
	http_req(p.port, "PUT", "/v1/mute", NULL, NULL, 0, &r);
	CHECK(r.status == 405, "PUT /v1/mute: %d", r.status);
	free(r.body);
	CHECK_EQ(stop(&p, SIGTERM), 0);
	unlink(path("mute.fifo"));
}

/* PUT /v1/thresholds: raising "yes" to 1 before the audio leaves no detection (the reference
 * has several at 0.365); GET reads the values back; bad requests change nothing. */
static void test_thresholds(void)
{
	struct proc p;
	int w;
	CHECK(start_fifo(&p, "thr.fifo", &w) == 0, "start on a FIFO: %s", p.err);
	struct resp r;
	const char *up = "{\"yes\": 1}";
	http_req(p.port, "PUT", "/v1/thresholds", "Content-Type: application/json\r\n", up, strlen(up), &r);
	CHECK(r.status == 200 && r.body && strstr(r.body, "\"yes\":1") && strstr(r.body, "\"no\":1"),
	      "PUT /v1/thresholds: %d %s", r.status, r.body ? r.body : "");
	free(r.body);
	static const char *const bad[] = {"{\"nope\": 0.5}", "{\"yes\": 2}", "{\"yes\": \"high\"}",
					  "{\"_silence_\": 0.5}", "[0.5]", "{\"yes\": 0.5, \"bogus\": 1}"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		http_req(p.port, "PUT", "/v1/thresholds", NULL, bad[i], strlen(bad[i]), &r);
		CHECK(r.status == 400 && r.body && strstr(r.body, "error"), "bad body %s: %d", bad[i], r.status);
		free(r.body);
	}
	static char big[20000];
	memset(big, ' ', sizeof big);
	big[0] = '{';
	big[sizeof big - 1] = '}';
	http_req(p.port, "PUT", "/v1/thresholds", NULL, big, sizeof big, &r);
	CHECK(r.status == 413, "a 20 kB body: %d", r.status);
	free(r.body);
	http_req(p.port, "POST", "/v1/thresholds", NULL, up, strlen(up), &r);
	CHECK(r.status == 405, "POST /v1/thresholds: %d", r.status);
	free(r.body);
	http_req(p.port, "GET", "/v1/thresholds", NULL, NULL, 0, &r);
	CHECK(r.status == 200 && r.body && strstr(r.body, "\"yes\":1"), "GET: the rejected bodies changed nothing: %s",
	      r.body ? r.body : "");
	free(r.body);
	feed_fifo(w);
	json_decref(wait_state(p.port, "eof", NULL));
	json_t *o = get_json(p.port, "/v1/detections?limit=1000", NULL, NULL);
	size_t nd = json_array_size(json_object_get(o, "detections"));
	json_decref(o);
	CHECK(nd == 0 && ref_mono.n > 0, "yes at 1: %zu detections (%zu at 0.365)", nd, ref_mono.n);
	CHECK(file_has(p.err, "thresholds set over HTTP: yes=1"), "the change is logged (%s)", p.err);
	CHECK_EQ(stop(&p, SIGTERM), 0);
	unlink(path("thr.fifo"));
}

/* Copy the safetensors file src to dst with the metadata key `key` set to `val` (the tensors'
 * bytes unchanged). 0 or -1. */
static int copy_with_meta(const char *src, const char *dst, const char *key, const char *val)
{
	FILE *f = fopen(src, "rb");
	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *b = len > 8 ? malloc((size_t)len) : NULL;
	int ok = b && fread(b, 1, (size_t)len, f) == (size_t)len;
	fclose(f);
	uint64_t n = 0;
	for (int i = 7; ok && i >= 0; i--)
		n = n << 8 | b[i];
	json_t *h = ok && n <= (uint64_t)len - 8 ? json_loadb((const char *)b + 8, (size_t)n, 0, NULL) : NULL;
	json_t *meta = json_object_get(h, "__metadata__");
	char *text = meta && !json_object_set_new(meta, key, json_string(val)) ? json_dumps(h, JSON_COMPACT) : NULL;
	FILE *o = text ? fopen(dst, "wb") : NULL;
	if (o) {
		size_t hl = strlen(text), pad = (8 - hl % 8) % 8;
		unsigned char l8[8];
		for (int i = 0; i < 8; i++)
			l8[i] = (unsigned char)((hl + pad) >> (8 * i));
		ok = fwrite(l8, 1, 8, o) == 8 && fwrite(text, 1, hl, o) == hl && fwrite("        ", 1, pad, o) == pad &&
		     fwrite(b + 8 + n, 1, (size_t)len - 8 - n, o) == (size_t)len - 8 - n;
		ok = fclose(o) == 0 && ok;
	}
	free(text);
	json_decref(h);
	free(b);
	return o && ok ? 0 : -1;
}

/* A model file's own thresholds (metadata 'thresholds') apply where no flag sets one: the test
 * model carrying the reference's thresholds finds the reference's detections with no
 * --threshold flag, and GET /v1/thresholds shows them; a --threshold flag still wins. */
static void test_model_thresholds(void)
{
	char copy[600], wav[600];
	const char *own = model;
	snprintf(copy, sizeof copy, "%s", path("thr_model.safetensors"));
	snprintf(wav, sizeof wav, "%s", path("mono.wav"));
	CHECK(copy_with_meta(model, copy, "thresholds",
			     "{\"yes\":0.365,\"no\":1,\"up\":1,\"down\":1,\"left\":1,\"right\":1,\"on\":1,"
			     "\"off\":1,\"stop\":1,\"go\":1}") == 0,
	      "write a copy of the model with thresholds");
	model = copy;
	static const char *const args[] = {"--input", NULL, "--refractory-ms", "300", "--warmup-ms", "200", NULL};
	const char *a[7];
	memcpy(a, args, sizeof a);
	a[1] = wav;
	struct proc p;
	CHECK(start(&p, NULL, a, NULL) == 0, "start with the model's thresholds: see %s", p.err);
	json_decref(wait_state(p.port, "eof", NULL));
	json_t *t = get_json(p.port, "/v1/thresholds", NULL, NULL);
	CHECK(fabs(jnum(t, "thresholds", "yes") - 0.365) < 1e-6 && jnum(t, "thresholds", "go") == 1,
	      "GET /v1/thresholds: the model's (yes %g, go %g)", jnum(t, "thresholds", "yes"), jnum(t, "thresholds", "go"));
	json_decref(t);
	struct dets got;
	fetch_dets(p.port, &got);
	CHECK(same_dets(&ref_mono, &got, -1, "model thresholds"), "the model's thresholds = the reference's flags");
	CHECK_EQ(stop(&p, SIGTERM), 0);
	static const char *const over[] = {"--threshold", "1", NULL};
	CHECK(start(&p, NULL, a, over) == 0, "start with --threshold 1: see %s", p.err);
	json_decref(wait_state(p.port, "eof", NULL));
	fetch_dets(p.port, &got);
	CHECK(got.n == 0 && ref_mono.n > 0, "--threshold 1 beats the model's thresholds: %zu detections", got.n);
	CHECK_EQ(stop(&p, SIGTERM), 0);
	model = own;
	unlink(copy);
}


static void test_channel_names(void)
{
	struct proc p;
	const char *logp = path("names.jsonl");
	unlink(logp);
	const char *a[] = {"--input", path("both.wav"), "--channel-names", " kitchen , hall", "--log", logp, NULL};
	CHECK(start(&p, NULL, a, det_args) == 0, "start with --channel-names: %s", p.err);
	json_t *st = wait_state(p.port, "eof", NULL);
	json_t *cn = json_object_get(st, "channel_names");
	CHECK(json_array_size(cn) == 2 && !strcmp(json_string_value(json_array_get(cn, 0)), "kitchen") &&
	      !strcmp(json_string_value(json_array_get(cn, 1)), "hall"), "status lists the names");
	json_decref(st);
	json_t *o = get_json(p.port, "/v1/detections?limit=1000", NULL, NULL);
	json_t *arr = json_object_get(o, "detections");
	size_t ok = 0, n = json_array_size(arr);
	for (size_t i = 0; i < n; i++) {
		json_t *d = json_array_get(arr, i);
		const char *nm = json_string_value(json_object_get(d, "channel_name"));
		int ch = (int)json_integer_value(json_object_get(d, "channel"));
		ok += nm && !strcmp(nm, ch == 0 ? "kitchen" : "hall");
	}
	json_decref(o);
	CHECK(n == 2 * ref_mono.n && ok == n, "%zu of %zu detections carry their channel's name", ok, n);
	CHECK_EQ(stop(&p, SIGTERM), 0);
	CHECK(file_has(logp, "\"channel_name\":\"hall\""), "the log has the names");
	/* restart on the same log: the reloaded history keeps them */
	const char *b[] = {"--input", path("both.wav"), "--channel-names", "kitchen,hall", "--log", logp,
			   "--duration", "0.1", NULL};
	CHECK(start(&p, NULL, b, det_args) == 0, "restart: %s", p.err);
	o = get_json(p.port, "/v1/detections?limit=1", NULL, NULL);
	json_t *d0 = json_array_get(json_object_get(o, "detections"), 0);
	CHECK(d0 && json_string_value(json_object_get(d0, "channel_name")), "a reloaded detection keeps its name");
	json_decref(o);
	CHECK_EQ(stop(&p, SIGTERM), 0);
	unlink(logp);
	const char *c[] = {"--input", path("both.wav"), "--channel-names", "a,b,c", NULL};
	CHECK(start(&p, NULL, c, det_args) != 0, "three names for two channels are refused");
	CHECK(file_has(p.err, "channel-names has more names than the 2 channels"), "one sentence (%s)", p.err);
}

/* Poll /v1/status until on_detect.run reaches want (10 s); returns the on_detect object's
 * figures in run/failed/skipped. */
static void hook_figures(int port, long long want, long long *run, long long *failed, long long *skipped)
{
	for (int i = 0; i < 200; i++) {
		json_t *o = get_json(port, "/v1/status", NULL, NULL);
		json_t *h = json_object_get(o, "on_detect");
		*run = json_integer_value(json_object_get(h, "run"));
		*failed = json_integer_value(json_object_get(h, "failed"));
		*skipped = json_integer_value(json_object_get(h, "skipped"));
		json_decref(o);
		if (*run >= want)
			return;
		usleep(50000);
	}
}

/* --on-detect: one command per detection, in order, with the detection on stdin and in the
 * environment; a failing command is counted and the rest go on; a hung one is killed with its
 * process group after the timeout, and shutdown stays bounded. */
static void test_on_detect(void)
{
	struct proc p;
	char cmd[1400];
	snprintf(cmd, sizeof cmd,
		 "cat >> %s; printf '%%s %%s %%s %%s\\n' \"$S4KWS_ID\" \"$S4KWS_KEYWORD\" \"$S4KWS_CHANNEL\" "
		 "\"$S4KWS_SCORE\" >> %s; [ \"$S4KWS_ID\" != 2 ] || exit 3",
		 path("hook.jsonl"), path("hook.env"));
	const char *a[] = {"--input", path("mono.wav"), "--on-detect", cmd, NULL};
	CHECK(start(&p, NULL, a, det_args) == 0, "start with --on-detect: %s", p.err);
	json_decref(wait_state(p.port, "eof", NULL));
	struct dets got;
	fetch_dets(p.port, &got);
	CHECK(got.n == ref_mono.n && got.n >= 3, "%zu detections", got.n);
	long long run = 0, failed = 0, skipped = 0;
	hook_figures(p.port, (long long)got.n, &run, &failed, &skipped);
	CHECK(run == (long long)got.n && failed == 1 && skipped == 0,
	      "status: on_detect run %lld (want %zu), failed %lld (want 1: detection 2 exits 3), skipped %lld",
	      run, got.n, failed, skipped);
	CHECK(metrics_have(p.port, "s4kws_on_detect_runs_total", got.n, "s4kws_on_detect_failures_total", 1),
	      "metrics count the commands");
	CHECK_EQ(stop(&p, SIGTERM), 0);
	CHECK(file_has(p.err, "on-detect: the command for detection 2 (") && file_has(p.err, "exited with status 3"),
	      "the failure is logged in one line (%s)", p.err);

	/* stdin: the detections' JSON lines, in order; environment: the same id, keyword, channel */
	FILE *fj = fopen(path("hook.jsonl"), "r"), *fe = fopen(path("hook.env"), "r");
	CHECK(fj && fe, "the command wrote its files");
	size_t k = 0;
	char line[2048], el[256];
	while (fj && fe && fgets(line, sizeof line, fj) && fgets(el, sizeof el, fe)) {
		json_error_t je;
		json_t *d = json_loads(line, 0, &je);
		long long id = json_integer_value(json_object_get(d, "id"));
		const char *kw = json_string_value(json_object_get(d, "keyword"));
		double score = json_number_value(json_object_get(d, "score"));
		long long eid = -1;
		char ekw[64] = "";
		int ech = -1;
		double escore = -1;
		int ok = sscanf(el, "%lld %63s %d %lf", &eid, ekw, &ech, &escore) == 4;
		CHECK(k < got.n && d && kw && id == got.id[k] && !strcmp(kw, got.kw[k]) &&
		      fabs(score - got.score[k]) < 1e-9 && json_number_value(json_object_get(d, "end")) == got.end[k],
		      "stdin line %zu is detection %lld: %s", k, k < got.n ? got.id[k] : -1LL, line);
		CHECK(ok && k < got.n && eid == got.id[k] && !strcmp(ekw, got.kw[k]) && ech == got.ch[k] &&
		      fabs(escore - got.score[k]) < 1e-4, "environment line %zu: %s", k, el);
		json_decref(d);
		k++;
	}
	CHECK(k == got.n, "%zu command runs recorded for %zu detections", k, got.n);
	if (fj)
		fclose(fj);
	if (fe)
		fclose(fe);
	unlink(path("hook.jsonl"));
	unlink(path("hook.env"));

	/* a hung command: killed after 1 s with what it started in the background (a loaded machine
	 * may kill a shell before it wrote its child's pid: at least one pid is required) */
	snprintf(cmd, sizeof cmd, "sleep 30 & echo $! >> %s; wait", path("hook.pids"));
	const char *b[] = {"--input", path("mono.wav"), "--on-detect", cmd, "--on-detect-timeout-ms", "1000", NULL};
	CHECK(start(&p, NULL, b, det_args) == 0, "start with a hanging --on-detect: %s", p.err);
	json_decref(wait_state(p.port, "eof", NULL));
	hook_figures(p.port, (long long)got.n, &run, &failed, &skipped);
	CHECK(run == (long long)got.n && failed == run, "hung commands: run %lld, failed %lld (want %zu each)",
	      run, failed, got.n);
	CHECK_EQ(stop(&p, SIGTERM), 0);
	CHECK(file_has(p.err, "was still running after 1000 ms and was killed"), "the kill is logged (%s)", p.err);
	FILE *fp = fopen(path("hook.pids"), "r");
	int pids = 0, alive = 0;
	long pid;
	while (fp && fscanf(fp, "%ld", &pid) == 1) {
		pids++;
		int gone = 0;
		for (int i = 0; i < 40 && !gone; i++) {
			gone = kill((pid_t)pid, 0) < 0 && errno == ESRCH;
			if (!gone)
				usleep(50000);
		}
		alive += !gone;
	}
	if (fp)
		fclose(fp);
	unlink(path("hook.pids"));
	CHECK(pids >= 1 && pids <= (int)got.n && alive == 0, "%d background children started, %d still alive",
	      pids, alive);

	/* shutdown while a command hangs: bounded by the timeout, exit 0 */
	const char *c[] = {"--input", path("mono.wav"), "--on-detect", "sleep 30", "--on-detect-timeout-ms", "1500", NULL};
	CHECK(start(&p, NULL, c, det_args) == 0, "start: %s", p.err);
	json_decref(wait_state(p.port, "eof", NULL));
	CHECK_EQ(stop(&p, SIGTERM), 0);
}

int main(int argc, char **argv)
{
	int rc = listen_setup(argc, argv, "test_listen_api");
	if (rc)
		return rc;
	test_auth_classify_reload();
	test_save_dir();
	test_dedup();
	test_verify();
	test_on_detect();
	test_mute();
	test_model_thresholds();
	test_thresholds();
	test_channel_names();
	return listen_cleanup();
}
