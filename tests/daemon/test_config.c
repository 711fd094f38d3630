/* test_config.c - the option table: defaults, flags, config file, per-keyword values, --help,
 * and refusal of bad values. Config files are written into the build directory at test time.
 *
 * The --help test reads every option name and default back out of the generated text and
 * feeds them through the flag parser and the file parser, so all three front ends are checked
 * to come from the same rows.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/check.h"
#include "daemon/config.h"
#include "daemon/log.h"
#include "spot/postproc.h"

static char tmpdir[] = "/tmp/s4kws-test-config-XXXXXX";

static const char *write_file(const char *name, const char *text)
{
	static char path[512];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

/* The same values as b, whether or not they were given (def_set marks a per-keyword option's
 * value as given, which matters only next to a model's own thresholds: test_model_thresholds). */
static int same_values(const struct cfg *a, const struct cfg *b)
{
	struct cfg x = *a;
	x.threshold.def_set = x.smooth_ms.def_set = x.min_ms.def_set = x.refractory_ms.def_set = 0;
	return !memcmp(&x, b, sizeof x);
}

static int parse(struct cfg *c, char *err, const char *a1, const char *a2, const char *a3,
		 const char *a4)
{
	char *argv[6] = {"listen", (char *)a1, (char *)a2, (char *)a3, (char *)a4, NULL};
	int argc = 1;
	while (argc < 5 && argv[argc])
		argc++;
	err[0] = 0;
	return cfg_parse(c, argc, argv, err, 256);
}

static void test_defaults(void)
{
	struct cfg c;
	cfg_defaults(&c);
	CHECK_EQ(c.port, 8080);
	CHECK(!strcmp(c.bind, "127.0.0.1"), "%s", c.bind);
	CHECK_EQ(c.channels, 0);
	CHECK_EQ(c.realtime, 0);
	CHECK_EQ(c.require_top, 1);
	CHECK_EQ(c.log_level, LOGL_INFO);
	CHECK_NEAR(c.threshold.def, 0.8, 1e-12);
	CHECK_EQ(c.threshold.n, 0);
	CHECK_NEAR(c.refractory_ms.def, 1000, 0);
	CHECK_NEAR(c.hop_ms, 10, 0);
	CHECK_EQ(c.max_body, 10485760);
	CHECK(c.model[0] == 0 && c.token[0] == 0 && c.input[0] == 0, "empty strings");
}

static void test_flags(void)
{
	struct cfg c;
	char err[256];
	char *argv[] = {"listen", "--port", "9000", "--bind=::1", "--realtime", "--threshold", "0.7",
			"--threshold", "yes=0.8", "--threshold=no=0.9", "--threshold", "yes=0.85",
			"--log-level", "debug", "--require-top=no", "--input", "-", "--duration", "2.5"};
	int argc = sizeof argv / sizeof argv[0];
	CHECK_EQ(cfg_parse(&c, argc, argv, err, sizeof err), 0);
	CHECK_EQ(c.port, 9000);
	CHECK(!strcmp(c.bind, "::1"), "%s", c.bind);
	CHECK_EQ(c.realtime, 1);
	CHECK_EQ(c.require_top, 0);
	CHECK_EQ(c.log_level, LOGL_DEBUG);
	CHECK(!strcmp(c.input, "-"), "%s", c.input);
	CHECK_NEAR(c.duration, 2.5, 0);
	CHECK_NEAR(c.threshold.def, 0.7, 1e-12);
	CHECK_EQ(c.threshold.n, 2); /* yes given twice: replaced, not added */
	CHECK_NEAR(cfg_kw_get(&c.threshold, "yes"), 0.85, 1e-12);
	CHECK_NEAR(cfg_kw_get(&c.threshold, "no"), 0.9, 1e-12);
	CHECK_NEAR(cfg_kw_get(&c.threshold, "go"), 0.7, 1e-12);
	CHECK_EQ(parse(&c, err, "--help", NULL, NULL, NULL), CFG_HELP);
	CHECK_EQ(parse(&c, err, "--port", "1", "-h", NULL), CFG_HELP);
}

static void test_file(void)
{
	struct cfg c;
	char err[256];
	const char *p = write_file("ok.conf",
				   "# comment\n"
				   "; another comment\n"
				   "port = 1234\n"
				   "realtime = yes\n"
				   "threshold = 0.65\n"
				   "threshold.yes = 0.85\n"
				   "refractory-ms.stop = 2000\n"
				   "token = s3cret\n"
				   "min-ms = 120 # an inline comment\n"
				   "smooth-ms = 80\t; another one\n"
				   "on-detect = echo a#b\n"
				   "\n");
	CHECK_EQ(parse(&c, err, "--config", p, NULL, NULL), 0);
	CHECK_EQ(c.port, 1234);
	CHECK_EQ(c.realtime, 1);
	CHECK(!strcmp(c.token, "s3cret"), "%s", c.token);
	CHECK(!strcmp(c.config, p), "config path kept: %s", c.config);
	CHECK_NEAR(cfg_kw_get(&c.threshold, "yes"), 0.85, 1e-12);
	CHECK_NEAR(cfg_kw_get(&c.threshold, "up"), 0.65, 1e-12);
	CHECK_NEAR(cfg_kw_get(&c.refractory_ms, "stop"), 2000, 0);
	CHECK_NEAR(cfg_kw_get(&c.min_ms, "yes"), 120, 0);
	CHECK_NEAR(cfg_kw_get(&c.smooth_ms, "yes"), 80, 0);
	CHECK(!strcmp(c.on_detect, "echo a#b"), "a '#' inside a word is kept: %s", c.on_detect);
	/* flags win over the file, wherever --config appears */
	CHECK_EQ(parse(&c, err, "--port", "4321", "--config", p), 0);
	CHECK_EQ(c.port, 4321);
	CHECK_EQ(parse(&c, err, "--threshold", "yes=0.5", "--config", p), 0);
	CHECK_NEAR(cfg_kw_get(&c.threshold, "yes"), 0.5, 1e-12);
	CHECK_NEAR(cfg_kw_get(&c.threshold, "up"), 0.65, 1e-12);

	/* bad files: one sentence with file and line */
	p = write_file("bad1.conf", "port = 80\nportt = 81\n");
	CHECK_EQ(parse(&c, err, "--config", p, NULL, NULL), -EINVAL);
	CHECK(strstr(err, "bad1.conf:2:") && strstr(err, "portt"), "%s", err);
	p = write_file("bad2.conf", "\n\nthreshold.yes = 2\n");
	CHECK_EQ(parse(&c, err, "--config", p, NULL, NULL), -EINVAL);
	CHECK(strstr(err, ":3:") && strstr(err, "out of range"), "%s", err);
	p = write_file("bad3.conf", "[server]\nport = 80\n");
	CHECK_EQ(parse(&c, err, "--config", p, NULL, NULL), -EINVAL);
	CHECK(strstr(err, "section"), "%s", err);
	p = write_file("bad4.conf", "config = other.conf\n");
	CHECK_EQ(parse(&c, err, "--config", p, NULL, NULL), -EINVAL);
	CHECK(strstr(err, "command line"), "%s", err);
	p = write_file("bad5.conf", "this line has no equals sign\n");
	CHECK_EQ(parse(&c, err, "--config", p, NULL, NULL), -EINVAL);
	CHECK(strstr(err, ":1:"), "%s", err);
	p = write_file("bad6.conf", "port.yes = 3\n");
	CHECK_EQ(parse(&c, err, "--config", p, NULL, NULL), -EINVAL);
	/* NUL bytes: refused with the line, not read as the end of the line or of the file */
	static const char nul1[] = "port = 80\nthresh\0old = 0.5\n", nul0[] = "\0threshold = 0.5\n";
	const char *np = write_file("nul1.conf", "");
	FILE *nf = fopen(np, "wb");
	fwrite(nul1, 1, sizeof nul1 - 1, nf);
	fclose(nf);
	CHECK_EQ(parse(&c, err, "--config", np, NULL, NULL), -EINVAL);
	CHECK(strstr(err, "nul1.conf:2: a NUL byte"), "%s", err);
	np = write_file("nul0.conf", "");
	nf = fopen(np, "wb");
	fwrite(nul0, 1, sizeof nul0 - 1, nf);
	fclose(nf);
	CHECK_EQ(parse(&c, err, "--config", np, NULL, NULL), -EINVAL);
	CHECK(strstr(err, "nul0.conf:1: a NUL byte"), "%s", err);
	CHECK_EQ(parse(&c, err, "--config", "/nonexistent/s4kws.conf", NULL, NULL), -ENOENT);
	CHECK(strstr(err, "/nonexistent/s4kws.conf"), "%s", err);
}

static void test_bad_flags(void)
{
	struct cfg c;
	char err[256];
	static const char *const bad[][2] = {
		{"--port", "70000"}, {"--port", "abc"}, {"--port", "1.5"}, {"--port", ""},
		{"--port", "99999999999999999999"}, {"--channels", "-1"}, {"--channels", "65"},
		{"--threshold", "1.5"}, {"--threshold", "0"}, {"--threshold", "yes=abc"},
		{"--threshold", "=0.5"}, {"--threshold", "nan"}, {"--hop-ms", "inf"},
		{"--realtime=maybe", NULL}, {"--nope", NULL}, {"positional", NULL}, {"--", NULL},
		{"--log-level", "loud"}, {"--port", NULL}, {"--max-body", "10"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = parse(&c, err, bad[i][0], bad[i][1], NULL, NULL);
		CHECK(rc == -EINVAL && err[0], "'%s %s' accepted (rc %d)", bad[i][0],
		      bad[i][1] ? bad[i][1] : "", rc);
	}
	char big[2000];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = 0;
	CHECK_EQ(parse(&c, err, "--model", big, NULL, NULL), -EINVAL);
	CHECK(strstr(err, "longer"), "%s", err);
	CHECK_EQ(parse(&c, err, "--port", "70000", NULL, NULL), -EINVAL);
	CHECK(strstr(err, "port") && strstr(err, "70000"), "names the option and value: %s", err);
}

/* Every row of --help: the default printed there parses back to cfg_defaults() through both the
 * flag and the file front end. */
static void test_help_table(void)
{
	char *h = cfg_help();
	CHECK(h != NULL, "help text");
	if (!h)
		return;
	struct cfg def;
	cfg_defaults(&def);
	int rows = 0, with_default = 0;
	char *save = NULL;
	for (char *line = strtok_r(h, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "  --", 4) || !strncmp(line, "  --help", 8))
			continue;
		rows++;
		char name[64];
		CHECK(sscanf(line + 4, "%63[^ []", name) == 1, "row: %s", line);
		char *d = strstr(line, "(default ");
		if (!d)
			continue;
		with_default++;
		char val[128];
		CHECK(sscanf(d + 9, "%127[^)]", val) == 1, "default of %s", name);
		struct cfg c;
		char err[256], flag[256];
		snprintf(flag, sizeof flag, "--%s=%s", name, val);
		int rc = parse(&c, err, flag, NULL, NULL, NULL);
		CHECK(rc == 0 && same_values(&c, &def), "--%s %s: rc %d %s", name, val, rc, err);
		if (!strcmp(name, "config"))
			continue;
		char text[256];
		snprintf(text, sizeof text, "%s = %s\n", name, val);
		const char *p = write_file("row.conf", text);
		cfg_defaults(&c);
		rc = cfg_load_file(&c, p, err, sizeof err);
		CHECK(rc == 0 && same_values(&c, &def), "file '%s': rc %d %s", name, rc, err);
	}
	CHECK(rows >= 30, "%d option rows", rows);
	CHECK(with_default >= 25, "%d rows with a default", with_default);
	free(h);
	h = cfg_help();
	static const char *const must[] = {"--model", "--device", "--channels", "--input", "--realtime",
					   "--bind", "--port", "--token", "--log ", "--threshold",
					   "--config", "--history", "--help"};
	for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
		CHECK(strstr(h, must[i]) != NULL, "help lacks %s", must[i]);
	free(h);
}

static void test_keywords_and_loopback(void)
{
	struct cfg c;
	char err[256];
	const char *labels[] = {"yes", "no", "_silence_", "_unknown_"};
	CHECK_EQ(parse(&c, err, "--threshold", "yes=0.7", "--min-ms", "no=50"), 0);
	CHECK_EQ(cfg_check_keywords(&c, labels, 4, err, sizeof err), 0);
	CHECK_EQ(parse(&c, err, "--threshold", "maybe=0.7", NULL, NULL), 0);
	CHECK_EQ(cfg_check_keywords(&c, labels, 4, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "maybe"), "%s", err);
	CHECK_EQ(parse(&c, err, "--refractory-ms", "_silence_=10", NULL, NULL), 0);
	CHECK_EQ(cfg_check_keywords(&c, labels, 4, err, sizeof err), -EINVAL);
	/* from the config file, in either form: the file and line */
	const char *p = write_file("kw.conf", "# a comment\nthreshold.yes = 0.7\n\nmin-ms = maybe=40\n");
	CHECK_EQ(parse(&c, err, "--config", p, NULL, NULL), 0);
	CHECK_EQ(cfg_check_keywords(&c, labels, 4, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "kw.conf:4: min-ms: 'maybe'"), "%s", err);
	p = write_file("kw2.conf", "threshold.mayb = 0.7\n");
	CHECK_EQ(parse(&c, err, "--config", p, NULL, NULL), 0);
	CHECK_EQ(cfg_check_keywords(&c, labels, 4, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "kw2.conf:1: threshold: 'mayb'"), "%s", err);
	CHECK(cfg_is_loopback("127.0.0.1") && cfg_is_loopback("::1") && cfg_is_loopback("localhost"),
	      "loopback");
	CHECK(!cfg_is_loopback("0.0.0.0") && !cfg_is_loopback("192.168.1.2") && !cfg_is_loopback("::"),
	      "not loopback");
	CHECK(cfg_is_loopback("0:0:0:0:0:0:0:1") && cfg_is_loopback("::ffff:127.0.0.2") && cfg_is_loopback("127.9.8.7"),
	      "loopback by address, not spelling");
	CHECK(!cfg_is_loopback("::2") && !cfg_is_loopback("::ffff:10.0.0.1") && !cfg_is_loopback("127.0.0") &&
		      !cfg_is_loopback("1270.0.0.1"), "not loopback by address");
	/* one number syntax: no hexadecimal, inf, nan or trailing words anywhere */
	static const char *const bad_num[][2] = {{"--port", "0x50"}, {"--threshold", "0x1p-1"}, {"--smooth-ms", "inf"},
						 {"--threshold", "nan"}, {"--port", "80.5"}, {"--port", "1e3"},
						 {"--threshold", "0.5x"}, {"--min-ms", " 40"}};
	for (size_t i = 0; i < sizeof bad_num / sizeof bad_num[0]; i++)
		CHECK(parse(&c, err, bad_num[i][0], bad_num[i][1], NULL, NULL) == -EINVAL, "%s '%s' refused",
		      bad_num[i][0], bad_num[i][1]);
	CHECK(parse(&c, err, "--threshold", "5e-1", "--min-ms", "+40") == 0 && fabs(c.threshold.def - 0.5) < 1e-12,
	      "decimal exponents and signs: %s", err);
}

/* The shipped s4kws.conf: loads as is, documents every option of --help, and the defaults it
 * shows (commented out) are the table's. */
static void test_shipped(const char *conf)
{
	char err[256];
	struct cfg c, def;
	cfg_defaults(&def);
	CHECK_EQ(cfg_load_file(&c, conf, err, sizeof err), 0);
	cfg_defaults(&c);
	CHECK(cfg_load_file(&c, conf, err, sizeof err) == 0 && !memcmp(&c, &def, sizeof c), "as shipped: %s", err);
	FILE *f = fopen(conf, "r");
	CHECK(f != NULL, "open %s", conf);
	if (!f)
		return;
	char text[32768] = "", line[1024];
	size_t len = 0;
	int n = 0;
	while (fgets(line, sizeof line, f)) {
		char name[64];
		/* "# name = value" or "# name =" is a documented default: uncomment it */
		int end = 0;
		if (line[0] == '#' && line[1] == ' ' && line[2] >= 'a' && line[2] <= 'z' &&
		    sscanf(line + 2, "%63[a-z.-]%n", name, &end) == 1 && !strncmp(line + 2 + end, " =", 2)) {
			len += (size_t)snprintf(text + len, sizeof text - len, "%s", line + 2);
			n++;
		}
	}
	fclose(f);
	const char *p = write_file("shipped.conf", text);
	cfg_defaults(&c);
	int rc = cfg_load_file(&c, p, err, sizeof err);
	CHECK(rc == 0 && same_values(&c, &def), "uncommented defaults = table defaults: %s", err);
	char *h = cfg_help();
	char *save = NULL;
	int missing = 0;
	for (char *l = strtok_r(h, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char name[64], want[80];
		if (strncmp(l, "  --", 4) || !strncmp(l, "  --help", 8) || !strncmp(l, "  --config", 10) ||
		    sscanf(l + 4, "%63[^ []", name) != 1)
			continue;
		snprintf(want, sizeof want, "\n%s =", name);
		if (!strstr(text, want) && !strstr(text, want + 1)) {
			printf("s4kws.conf does not document %s\n", name);
			missing++;
		}
	}
	free(h);
	CHECK(missing == 0 && n >= 30, "%d options documented, %d missing", n, missing);
}

/* postproc's own defaults (used by code that has no struct cfg) are the table's. */
static void test_postproc_defaults(void)
{
	struct cfg c;
	cfg_defaults(&c);
	struct pp_kw kw;
	pp_kw_default(&kw);
	const char *labels[1] = {"yes"};
	struct pp_config pc;
	pp_config_default(&pc, 16000, 160, 1, labels, &kw);
	CHECK(kw.threshold == (float)c.threshold.def && kw.smooth_ms == (float)c.smooth_ms.def &&
		      kw.min_ms == (float)c.min_ms.def && kw.refractory_ms == (float)c.refractory_ms.def &&
		      pc.warmup_ms == (float)c.warmup_ms && pc.latency_ms == (float)c.latency_ms &&
		      pc.word_ms == (float)c.word_ms && pc.onset == (float)c.onset && pc.require_top == c.require_top,
	      "pp_kw_default/pp_config_default match the option table");
}

/* cfg_pp_kw: a keyword's own value, else the option's given value, else the model's tuned
 * threshold, else the table's default. */
static void test_model_thresholds(void)
{
	const char *labels[4] = {"yes", "no", "up", "_silence_"};
	const float model[4] = {0.6f, NAN, 0.9f, NAN};
	struct pp_kw kw[4];
	struct cfg c;
	char err[256];
	CHECK(parse(&c, err, NULL, NULL, NULL, NULL) == 0, "no flags: %s", err);
	cfg_pp_kw(&c, labels, model, 4, kw);
	CHECK(kw[0].threshold == 0.6f && kw[1].threshold == (float)PP_DEF_THRESHOLD && kw[2].threshold == 0.9f,
	      "no flags: the model's thresholds, the default where it has none (%g %g %g)", kw[0].threshold,
	      kw[1].threshold, kw[2].threshold);
	cfg_pp_kw(&c, labels, NULL, 4, kw);
	CHECK(kw[0].threshold == (float)PP_DEF_THRESHOLD && kw[2].threshold == (float)PP_DEF_THRESHOLD,
	      "no model thresholds: the default");
	CHECK(parse(&c, err, "--threshold", "up=0.5", NULL, NULL) == 0, "up=0.5: %s", err);
	cfg_pp_kw(&c, labels, model, 4, kw);
	CHECK(kw[0].threshold == 0.6f && kw[2].threshold == 0.5f, "a keyword's flag beats the model (%g %g)",
	      kw[0].threshold, kw[2].threshold);
	CHECK(parse(&c, err, "--threshold", "0.8", "--threshold", "no=0.3") == 0, "0.8: %s", err);
	cfg_pp_kw(&c, labels, model, 4, kw);
	CHECK(kw[0].threshold == 0.8f && kw[1].threshold == 0.3f && kw[2].threshold == 0.8f,
	      "a given threshold, even the default value, beats the model (%g %g %g)", kw[0].threshold,
	      kw[1].threshold, kw[2].threshold);
	CHECK(kw[0].smooth_ms == (float)PP_DEF_SMOOTH_MS && kw[0].min_ms == (float)PP_DEF_MIN_MS &&
		      kw[0].refractory_ms == (float)PP_DEF_REFRACTORY_MS,
	      "the other settings are the table's");
	const char *path = write_file("thr.conf", "threshold = 0.75\n");
	CHECK(parse(&c, err, "--config", path, NULL, NULL) == 0, "config: %s", err);
	cfg_pp_kw(&c, labels, model, 4, kw);
	CHECK(kw[0].threshold == 0.75f && kw[2].threshold == 0.75f, "the config file's threshold beats the model");
}

/* The token from --token-file (first line, no line end) or $S4KWS_TOKEN, never both --token and
 * --token-file; the MQTT password from its file; errors name the file, not the secret. */
static void test_secrets(void)
{
	struct cfg c;
	char err[256], flag[600], flag2[600];
	const char *p = write_file("token", "s3cret-tok  \nsecond line\n");
	snprintf(flag, sizeof flag, "--token-file=%s", p);
	unsetenv("S4KWS_TOKEN");
	CHECK(parse(&c, err, flag, NULL, NULL, NULL) == 0 && !strcmp(c.token, "s3cret-tok"), "%s '%s'", err,
	      c.token);
	CHECK(parse(&c, err, flag, "--token", "x", NULL) == -EINVAL && strstr(err, "not both"), "%s", err);
	setenv("S4KWS_TOKEN", "env-tok", 1);
	CHECK(parse(&c, err, NULL, NULL, NULL, NULL) == 0 && !strcmp(c.token, "env-tok"), "env: '%s'", c.token);
	CHECK(parse(&c, err, "--token", "flag-tok", NULL, NULL) == 0 && !strcmp(c.token, "flag-tok"), "flag wins");
	CHECK(parse(&c, err, flag, NULL, NULL, NULL) == 0 && !strcmp(c.token, "s3cret-tok"), "file wins");
	unsetenv("S4KWS_TOKEN");
	p = write_file("mqpass", "mq-pw\r\n");
	snprintf(flag2, sizeof flag2, "--mqtt-password-file=%s", p);
	CHECK(parse(&c, err, flag2, NULL, NULL, NULL) == 0 && !strcmp(c.mqtt_password, "mq-pw"), "%s", err);
	p = write_file("empty", "\n");
	snprintf(flag2, sizeof flag2, "--mqtt-password-file=%s", p);
	CHECK(parse(&c, err, flag2, NULL, NULL, NULL) == -EINVAL && strstr(err, "empty") &&
	      strstr(err, "mqtt-password-file"), "%s", err);
	CHECK(parse(&c, err, "--token-file", "/nonexistent/token", NULL, NULL) == -ENOENT &&
	      strstr(err, "/nonexistent/token"), "%s", err);
}

static void note(const char *name, void *user)
{
	char *names = user;
	strcat(names, name);
	strcat(names, ";");
}

/* SIGHUP: the options read only at start (the table's restart flag) keep their running value
 * and are named; the detection settings take the new one. */
static void test_keep_restart(void)
{
	struct cfg old, nc;
	char err[256], names[256] = "";
	CHECK_EQ(parse(&old, err, "--port", "9000", "--threshold", "0.7"), 0);
	CHECK_EQ(parse(&nc, err, "--port", "9001", "--threshold", "0.6"), 0);
	snprintf(nc.input, sizeof nc.input, "%s", "other.wav");
	cfg_keep_restart(&nc, &old, note, names);
	CHECK_EQ(nc.port, 9000);
	CHECK(!strcmp(nc.input, ""), "input kept: '%s'", nc.input);
	CHECK_NEAR(nc.threshold.def, 0.6, 1e-12);
	CHECK(!strcmp(names, "input;port;"), "named: %s", names);
	char *h = cfg_help();
	char *port = h ? strstr(h, "  --port ") : NULL, *thr = h ? strstr(h, "  --threshold ") : NULL;
	char *pe = port ? strchr(port, '\n') : NULL, *te = thr ? strchr(thr, '\n') : NULL;
	if (pe)
		*pe = 0;
	if (te)
		*te = 0;
	CHECK(port && thr && strstr(port, "(restart)") && !strstr(thr, "(restart)"),
	      "--help marks --port, not --threshold, as read at start");
	free(h);
}

int main(int argc, char **argv)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_defaults();
	test_flags();
	test_file();
	test_bad_flags();
	test_help_table();
	test_keywords_and_loopback();
	test_postproc_defaults();
	test_model_thresholds();
	test_secrets();
	test_keep_restart();
	if (argc > 1)
		test_shipped(argv[1]);
	static const char *const files[] = {"ok.conf", "bad1.conf", "bad2.conf", "bad3.conf", "bad4.conf",
					    "bad5.conf", "bad6.conf", "row.conf", "shipped.conf", "thr.conf",
					    "token", "mqpass", "empty", "kw.conf", "kw2.conf", "nul0.conf",
					    "nul1.conf"};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		char path[600];
		snprintf(path, sizeof path, "%s/%s", tmpdir, files[i]);
		unlink(path);
	}
	rmdir(tmpdir);
	return CHECK_DONE();
}
