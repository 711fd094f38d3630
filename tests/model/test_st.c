/* test_st.c - the weights loader (st.c + the validation in s4m.c) against valid and broken
 * files written from C.
 *
 * Each malformed case starts from a valid small model (tests/model/modelgen.c), breaks one
 * thing, and checks that loading fails with one sentence (ends with '.', no newline) that
 * contains the expected words. A valid file must load, and st.c must return what was written.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/check.h"
#include "model/s4m.h"
#include "model/st.h"
#include "modelgen.h"

static struct mg_opts base_opts(void)
{
	struct mg_opts o = mg_defaults();
	o.seed = 3;
	return o;
}

/* Load buf; expect failure with `want` in the message. */
static void expect_fail_buf(const char *what, const unsigned char *buf, size_t len, const char *want)
{
	char err[S4K_ERR_LEN] = "";
	struct s4m_model *m = s4m_load_buffer(buf, len, 1.0, err, sizeof err);
	CHECK(!m, "%s: loaded although broken", what);
	s4m_free(m);
	size_t n = strlen(err);
	CHECK(n > 0 && err[n - 1] == '.' && !strchr(err, '\n'), "%s: not one sentence: '%s'", what, err);
	CHECK(strstr(err, want) != NULL, "%s: message '%s' lacks '%s'", what, err, want);
	printf("  %-28s -> %s\n", what, err);
}

static void expect_fail(const char *what, const struct mg_file *f, const char *want)
{
	size_t len;
	unsigned char *buf = mg_serialize(f, &len);
	expect_fail_buf(what, buf, len, want);
	free(buf);
}

/* A fresh valid model, mutated by the caller. */
static struct mg_file fresh(const struct mg_opts *o)
{
	struct mg_file f = {0};
	mg_random_model(&f, o);
	return f;
}

static void test_valid(void)
{
	struct mg_opts o = base_opts();
	struct mg_file f = fresh(&o);
	size_t len;
	unsigned char *buf = mg_serialize(&f, &len);
	char err[S4K_ERR_LEN] = "";

	struct st_file *sf = st_open_buffer(buf, len, err, sizeof err);
	CHECK(sf != NULL, "st_open_buffer: %s", err);
	if (sf) {
		CHECK(st_count(sf) == f.n, "%zu tensors, wrote %zu", st_count(sf), f.n);
		const struct st_tensor *t = st_find(sf, "blocks.1.out.weight");
		CHECK(t && t->rank == 2 && t->shape[0] == 24 && t->shape[1] == 12 && t->dtype == ST_F32,
		      "blocks.1.out.weight header");
		if (t) {
			double *v = malloc(t->numel * sizeof *v);
			st_read_f64(t, v);
			const struct mg_tensor *w = mg_find(&f, "blocks.1.out.weight");
			int same = 1;
			for (size_t i = 0; i < t->numel; i++)
				same &= v[i] == (double)(float)w->v[i];
			CHECK(same, "values read back differ");
			free(v);
		}
		CHECK(st_meta(sf, "format") && !strcmp(st_meta(sf, "format"), "s4kws"), "meta format");
		CHECK(st_find(sf, "nope") == NULL, "st_find of a missing name");
		st_close(sf);
	}

	struct s4m_model *m = s4m_load_buffer(buf, len, 1.0, err, sizeof err);
	CHECK(m != NULL, "valid model refused: %s", err);
	if (m) {
		CHECK(s4m_n_labels(m) == 5 && !strcmp(s4m_label(m, 2), "w2"), "labels");
		CHECK(s4m_hop(m) == 8 && s4m_window(m) == 1600 && s4m_preroll(m) == 800, "sizes");
		CHECK(s4m_n_blocks(m) == 3, "blocks");
		CHECK(s4m_meta(m, "name") && !strcmp(s4m_meta(m, "name"), "test-model"), "meta name");
		int none = 1;
		for (int k = 0; k < 5; k++)
			none &= isnan(s4m_thresholds(m)[k]);
		CHECK(none, "a file without 'thresholds' recommends none");
		size_t np = 0;
		for (size_t i = 0; i < f.n; i++)
			np += f.t[i].numel;
		CHECK(s4m_n_params(m) == np, "n_params %zu, expected %zu", s4m_n_params(m), np);
		s4m_free(m);
	}

	/* the same through a file, and F64 tensors */
	o.dtype = MG_F64;
	struct mg_file f64 = fresh(&o);
	char path[] = "/tmp/s4kws-test-st-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0, "mkstemp");
	close(fd);
	CHECK(mg_write(&f64, path) == 0, "write");
	m = s4m_load(path, 1.0, err, sizeof err);
	CHECK(m != NULL, "valid F64 file refused: %s", err);
	s4m_free(m);
	unlink(path);
	m = s4m_load(path, 1.0, err, sizeof err);
	CHECK(!m && strstr(err, "cannot open") && strstr(err, path), "missing file: '%s'", err);
	m = s4m_load("/tmp", 1.0, err, sizeof err);
	CHECK(!m && strstr(err, "not a regular file"), "directory: '%s'", err);
	free(buf);
	mg_free(&f);
	mg_free(&f64);
}

static void test_raw_headers(void)
{
	size_t len;
	unsigned char *b;
	const unsigned char tiny[5] = {1, 2, 3, 4, 5};

	expect_fail_buf("file shorter than 8 bytes", tiny, sizeof tiny, "too short");
	expect_fail_buf("empty buffer", NULL, 0, "too short");

	/* header length beyond the file */
	b = mg_raw("{}", NULL, 0, &len);
	b[0] = 200;
	expect_fail_buf("header length > file", b, len, "exceeds");
	free(b);

	/* header length above the cap: 100 MB + 1 of zeros (lazily mapped, never touched) */
	size_t big = ST_MAX_HEADER + 8 + 1;
	unsigned char *z = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(z != MAP_FAILED, "mmap");
	if (z != MAP_FAILED) {
		uint64_t hl = ST_MAX_HEADER + 1;
		for (int i = 0; i < 8; i++)
			z[i] = (unsigned char)(hl >> (8 * i));
		expect_fail_buf("header length > 100 MB", z, big, "limit");
		munmap(z, big);
	}

	b = mg_raw("{\"a\": [1, 2", NULL, 0, &len);
	expect_fail_buf("non-JSON header", b, len, "not valid JSON");
	free(b);
	b = mg_raw("[1, 2, 3]", NULL, 0, &len);
	expect_fail_buf("JSON array header", b, len, "not an object");
	free(b);
	b = mg_raw("{\"__metadata__\": {\"format\": \"s4kws\", \"format\": \"x\"}}", NULL, 0, &len);
	expect_fail_buf("duplicate keys", b, len, "duplicate");
	free(b);
	b = mg_raw("{\"__metadata__\": {\"format\": 1}}", NULL, 0, &len);
	expect_fail_buf("metadata value not a string", b, len, "not a string");
	free(b);
	b = mg_raw("{\"__metadata__\": [\"format\"]}", NULL, 0, &len);
	expect_fail_buf("metadata not an object", b, len, "__metadata__ is a JSON array");
	free(b);

	float d[4] = {1, 2, 3, 4};
	b = mg_raw("{\"t\": {\"dtype\": \"BF16\", \"shape\": [2], \"data_offsets\": [0, 4]}}", d, 16, &len);
	expect_fail_buf("bad dtype", b, len, "dtype 'BF16'");
	free(b);
	b = mg_raw("{\"t\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", d, 16, &len);
	expect_fail_buf("missing dtype", b, len, "lacks the field 'dtype'");
	free(b);
	b = mg_raw("{\"t\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", d, 16, &len);
	expect_fail_buf("shape/offset mismatch", b, len, "spanning 8 bytes");
	free(b);
	b = mg_raw("{\"t\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}}", d, 16, &len);
	expect_fail_buf("offsets out of range", b, len, "outside the data area");
	free(b);
	b = mg_raw("{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 0]}}", d, 16, &len);
	expect_fail_buf("reversed offsets", b, len, "outside the data area");
	free(b);
	b = mg_raw("{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [-4, 4]}}", d, 16, &len);
	expect_fail_buf("negative offset", b, len, "not non-negative");
	free(b);
	b = mg_raw("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
		   " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", d, 16, &len);
	expect_fail_buf("overlapping tensors", b, len, "overlap");
	free(b);
	b = mg_raw("{\"t\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1], \"data_offsets\": [0, 4]}}", d, 16, &len);
	expect_fail_buf("rank 5", b, len, "rank 5");
	free(b);
	b = mg_raw("{\"t\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 4294967296], "
		   "\"data_offsets\": [0, 4]}}", d, 16, &len);
	expect_fail_buf("element count overflow", b, len, "overflows");
	free(b);
	b = mg_raw("{\"t\": {\"dtype\": \"F32\", \"shape\": [2.0], \"data_offsets\": [0, 8]}}", d, 16, &len);
	expect_fail_buf("float in shape", b, len, "shape entry 0");
	free(b);
	b = mg_raw("{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8], \"x\": 1}}", d, 16, &len);
	expect_fail_buf("unknown tensor field", b, len, "unknown field 'x'");
	free(b);
	b = mg_raw("{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", d, 16, &len);
	expect_fail_buf("no __metadata__", b, len, "no __metadata__");
	free(b);
	/* a name with control bytes is quoted safely */
	b = mg_raw("{\"a\\u0001b\": {\"dtype\": \"I8\", \"shape\": [2], \"data_offsets\": [0, 2]}}", d, 16, &len);
	expect_fail_buf("control bytes in a name", b, len, "'a?b'");
	free(b);
}

static void test_metadata(void)
{
	struct mg_opts o = base_opts();
	struct mg_file f;
	struct {
		const char *what, *key, *val, *want;
	} cases[] = {
		{"wrong format name", "format", "gguf", "'format' is 'gguf'"},
		{"unknown version", "format_version", "2", "unsupported format_version '2'"},
		{"unsupported activation", "activation", "relu", "unsupported activation 'relu' (only gelu)"},
		{"unsupported output", "output", "linear", "unsupported output 'linear' (only glu)"},
		{"unsupported kernel", "kernel", "s5", "unsupported kernel 's5' (expected s4d or dplr)"},
		{"unsupported disc", "disc", "foh", "unsupported disc 'foh'"},
		{"unsupported dt_transform", "dt_transform", "sigmoid", "unsupported dt_transform 'sigmoid'"},
		{"unsupported real_transform", "real_transform", "softplus", "unsupported real_transform 'softplus'"},
		{"unsupported norm", "norm", "group", "unsupported norm 'group'"},
		{"unsupported decoder", "decoder", "max", "unsupported decoder 'max'"},
		{"labels not an array", "labels", "yes,no", "'labels' is not a JSON array"},
		{"labels with a number", "labels", "[\"a\", 3, \"b\", \"c\", \"d\"]", "'labels' entry 1"},
		{"widths not integers", "widths", "[8, \"x\", 12]", "'widths' entry 1"},
		{"pools count mismatch", "pools", "[4, 2]", "'pools' has 2 entries, expected 3"},
		{"bool not true/false", "prenorm", "yes", "'prenorm' is 'yes', expected true or false"},
		{"d_state odd", "d_state", "15", "must be even"},
		{"sample_rate text", "sample_rate", "16k", "'sample_rate' is '16k'"},
		{"l_max not a pool multiple", "l_max", "2404", "not a multiple of the total pool 8"},
		{"window not a pool multiple", "decoder_window", "1601", "'decoder_window' (1601) is not a multiple"},
		{"n_ssm negative", "n_ssm", "-1", "'n_ssm' is '-1'"},
		{"l_kernel on s4d", "l_kernel", "[0, 5, 0]", "must be 0 for kernel 's4d'"},
		{"zoh for dplr", "kernel", "dplr", "dplr"}, /* with disc zoh present */
		{"thresholds not an object", "thresholds", "[0.5]", "'thresholds' is not a JSON object"},
		{"thresholds not JSON", "thresholds", "w1=0.5", "'thresholds' is not a JSON object"},
		{"thresholds for a non-label", "thresholds", "{\"w1\": 0.5, \"yes\": 0.5}", "names 'yes', which is not a keyword"},
		{"threshold above 1", "thresholds", "{\"w1\": 1.5}", "gives 'w1' a value that is not a number in (0, 1]"},
		{"threshold 0", "thresholds", "{\"w1\": 0}", "gives 'w1' a value that is not a number in (0, 1]"},
		{"threshold a string", "thresholds", "{\"w1\": \"0.5\"}", "gives 'w1' a value that is not"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		f = fresh(&o);
		mg_meta_set(&f, cases[i].key, cases[i].val);
		if (!strcmp(cases[i].what, "zoh for dplr")) {
			mg_meta_set(&f, "disc", "zoh");
			mg_meta_set(&f, "l_kernel", "[0,0,0]");
			cases[i].want = "unsupported disc 'zoh' for kernel 'dplr'";
		}
		expect_fail(cases[i].what, &f, cases[i].want);
		mg_free(&f);
	}
	/* tuned thresholds: the ones given, NaN for the rest */
	f = fresh(&o);
	mg_meta_set(&f, "thresholds", "{\"w1\": 0.7, \"w4\": 1}");
	{
		size_t len;
		char err[S4K_ERR_LEN] = "no memory";
		unsigned char *buf = mg_serialize(&f, &len);
		struct s4m_model *m = buf ? s4m_load_buffer(buf, len, 1.0, err, sizeof err) : NULL;
		CHECK(m != NULL, "model with thresholds refused: %s", err);
		if (m) {
			const float *t = s4m_thresholds(m);
			CHECK(isnan(t[0]) && t[1] == 0.7f && isnan(t[2]) && isnan(t[3]) && t[4] == 1.0f,
			      "thresholds %g %g %g %g %g", t[0], t[1], t[2], t[3], t[4]);
			s4m_free(m);
		}
		free(buf);
	}
	mg_free(&f);
	f = fresh(&o);
	mg_meta_del(&f, "widths");
	expect_fail("missing metadata key", &f, "lacks the key 'widths'");
	mg_free(&f);
	f = fresh(&o);
	mg_meta_del(&f, "format");
	expect_fail("missing format", &f, "lacks the key 'format'");
	mg_free(&f);
	f = fresh(&o);
	f.no_meta = 1;
	expect_fail("no metadata at all", &f, "no __metadata__");
	mg_free(&f);
	o.dplr = 1;
	f = fresh(&o);
	mg_meta_del(&f, "l_kernel");
	expect_fail("dplr without l_kernel", &f, "lacks the key 'l_kernel'");
	mg_free(&f);
}

static void test_tensors(void)
{
	struct mg_opts o = base_opts();
	struct mg_file f;

	f = fresh(&o);
	mg_del(&f, "blocks.1.ssm.B");
	expect_fail("missing tensor", &f, "tensor 'blocks.1.ssm.B' is missing");
	mg_free(&f);

	f = fresh(&o);
	mg_add(&f, "blocks.1.ssm.P", MG_F32, 3, 2, 8, 2, 0);
	expect_fail("extra tensor", &f, "unexpected tensor 'blocks.1.ssm.P'");
	mg_free(&f);

	f = fresh(&o);
	mg_add(&f, "widen.1.weight", MG_F32, 2, 12, 12, 0, 0);
	expect_fail("widen where widths agree", &f, "unexpected tensor 'widen.1.weight'");
	mg_free(&f);

	f = fresh(&o);
	mg_meta_set(&f, "widths", "[10, 12, 12]");
	expect_fail("wrong shape vs widths", &f, "tensor 'encoder.weight' has shape [8, 1]; the metadata requires [10, 1]");
	mg_free(&f);

	f = fresh(&o);
	mg_meta_set(&f, "d_state", "32");
	expect_fail("wrong shape vs d_state", &f, "'blocks.0.ssm.A_real' has shape [2, 8]; the metadata requires [2, 16]");
	mg_free(&f);

	f = fresh(&o);
	mg_meta_set(&f, "labels", "[\"a\",\"b\"]");
	expect_fail("wrong shape vs labels", &f, "'decoder.weight' has shape [5, 12]; the metadata requires [2, 12]");
	mg_free(&f);

	f = fresh(&o);
	mg_meta_set(&f, "norm", "batch");
	expect_fail("batch norm without stats", &f, "'blocks.0.norm.running_mean' is missing");
	mg_free(&f);

	f = fresh(&o);
	mg_find(&f, "blocks.2.out.bias")->v[3] = NAN;
	expect_fail("NaN weight", &f, "tensor 'blocks.2.out.bias' holds a NaN value at index 3");
	mg_free(&f);

	f = fresh(&o);
	mg_find(&f, "encoder.weight")->v[0] = INFINITY;
	expect_fail("Inf weight", &f, "tensor 'encoder.weight' holds an infinite value");
	mg_free(&f);

	f = fresh(&o);
	mg_find(&f, "blocks.0.ssm.inv_dt")->v[1] = 800; /* exp(800) = inf */
	expect_fail("dt overflow", &f, "'blocks.0.ssm.inv_dt' gives a step size");
	mg_free(&f);

	o.batch = 1;
	f = fresh(&o);
	mg_find(&f, "blocks.1.norm.running_var")->v[2] = -1;
	expect_fail("negative running_var", &f, "'blocks.1.norm.running_var' is negative at index 2");
	mg_free(&f);
	o.batch = 0;

	o.bidir = 1;
	f = fresh(&o);
	mg_meta_set(&f, "bidirectional", "false");
	expect_fail("bidirectional C in causal model", &f, "'blocks.0.ssm.C' has shape [2, 8, 8, 2]");
	mg_free(&f);
}

int main(void)
{
	test_valid();
	test_raw_headers();
	test_metadata();
	test_tensors();
	return CHECK_DONE();
}
