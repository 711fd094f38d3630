/* s4m_stream.c - step mode: the network one input sample at a time, one state per stream.
 *
 * Design: a stream holds everything that changes (SSM states, pooling accumulators, the
 * decoder window) in one allocation made by s4m_stream_new(); s4m_stream_push() only computes.
 * Block i steps once every cumpool(i) input samples: block i-1 adds each of its outputs into an
 * accumulator, and when pools[i-1] of them are in, their mean (after widen; widen is affine so
 * it is applied once to the mean) is block i's next input. After the last block (and its pool
 * and the final norm) each final step enters the decoder window: a ring of the last Wf feature
 * vectors and their running sum in double. The running sum is recomputed from the ring every
 * time the ring wraps, so rounding cannot accumulate over a stream that runs for days.
 *
 * s4m_stream_push() takes the samples in chunks of up to CHUNK and runs a chunk through the blocks
 * one block at a time: block i steps over all the rows that reach it (about CHUNK / cumpool(i)),
 * so its SSM coefficients and weights are read once per chunk rather than once per step. The
 * order of the arithmetic within each step is the one-step order, so the numbers are those of
 * stepping sample by sample.
 *
 * The per-step maths is the conv-mode maths of s4m_conv.c for one time step, so after exactly
 * s4m_window() samples from a zero state both modes give the same scores (to float rounding).
 */
#include "s4m_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct sblk {
	float complex *x;       /* (H N2) SSM state, opaque to us (s4k.h) */
	float *acc;             /* (H) sum of this block's outputs awaiting pooling */
	int cnt;                /* outputs in acc */
};

/* Input samples per pass through the blocks (s4m_stream_push). */
#define CHUNK 256

struct s4m_stream {
	const struct s4m_model *m;
	uint64_t samples;
	struct sblk *sb;        /* (n_blocks) */
	float *u, *z, *y, *g;   /* rows of one chunk at one block: (rows, H) each, g (rows, 2H) */
	float *ring;            /* (Wf, Hlast) last final features */
	double *sum;            /* (Hlast) sum of the ring's valid rows */
	size_t pos, count;      /* next ring row; valid rows (<= Wf) */
	void *mem;              /* the one allocation behind everything above */
	size_t memlen;
};

/* Carve 64-byte aligned pieces out of one block: first pass sizes, second pass assigns. */
static void *carve(unsigned char *base, size_t *off, size_t bytes)
{
	size_t o = (*off + 63) & ~(size_t)63;
	*off = o + bytes;
	return base ? base + o : NULL;
}

/* Floats of one chunk's rows at the widest point of the network (u, z, y; g twice that). */
static size_t chunk_floats(const struct s4m_model *m)
{
	size_t rows = 0;
	for (int i = 0; i < m->n_blocks; i++) {
		const struct s4m__block *b = &m->b[i];
		/* at most CHUNK / cum + 1 rows reach block i in a chunk (the pooling carries less
		 * than one row over), H wide; after its pooling CHUNK / (cum pool) + 1, Hout wide */
		size_t in = (CHUNK / b->cum + 1) * (size_t)b->H;
		size_t out = (CHUNK / (b->cum * (size_t)b->pool) + 1) * (size_t)b->Hout;
		rows = in > rows ? in : rows;
		rows = out > rows ? out : rows;
	}
	return rows;
}

static size_t layout(struct s4m_stream *st, const struct s4m_model *m, unsigned char *base)
{
	size_t off = 0, rows = chunk_floats(m);
	for (int i = 0; i < m->n_blocks; i++) {
		const struct s4m__block *b = &m->b[i];
		void *x = carve(base, &off, (size_t)b->H * (size_t)m->N2 * sizeof(float complex));
		void *acc = carve(base, &off, (size_t)b->H * sizeof(float));
		if (base) {
			st->sb[i].x = x;
			st->sb[i].acc = acc;
		}
	}
	void *u = carve(base, &off, rows * sizeof(float));
	void *z = carve(base, &off, rows * sizeof(float));
	void *y = carve(base, &off, rows * sizeof(float));
	void *g = carve(base, &off, 2 * rows * sizeof(float));
	void *ring = carve(base, &off, m->Wf * (size_t)m->Hlast * sizeof(float));
	void *sum = carve(base, &off, (size_t)m->Hlast * sizeof(double));
	if (base) {
		st->u = u;
		st->z = z;
		st->y = y;
		st->g = g;
		st->ring = ring;
		st->sum = sum;
	}
	return off;
}

struct s4m_stream *s4m_stream_new(const struct s4m_model *m, char *err, size_t errlen)
{
	if (m->bidir) {
		s4k_seterr(err, errlen,
			   "this model is bidirectional (it looks ahead in time), so it cannot run in stream mode; use file (conv) mode.");
		return NULL;
	}
	struct s4m_stream *st = calloc(1, sizeof *st);
	if (!st || !(st->sb = calloc((size_t)m->n_blocks, sizeof *st->sb))) {
		free(st);
		s4k_seterr(err, errlen, "out of memory for a stream.");
		return NULL;
	}
	st->m = m;
	st->memlen = layout(st, m, NULL);
	if (posix_memalign(&st->mem, 64, st->memlen)) {
		free(st->sb);
		free(st);
		s4k_seterr(err, errlen, "out of memory for a stream.");
		return NULL;
	}
	layout(st, m, st->mem);
	s4m_stream_reset(st);
	return st;
}

void s4m_stream_free(struct s4m_stream *st)
{
	if (!st)
		return;
	free(st->mem);
	free(st->sb);
	free(st);
}

void s4m_stream_reset(struct s4m_stream *st)
{
	memset(st->mem, 0, st->memlen);
	for (int i = 0; i < st->m->n_blocks; i++)
		st->sb[i].cnt = 0;
	st->pos = 0;
	st->count = 0;
	st->samples = 0;
}

void s4m_stream_copy(struct s4m_stream *dst, const struct s4m_stream *src)
{
	if (dst == src)
		return;
	/* same model, so the same layout: one memcpy of the block, then the counters */
	memcpy(dst->mem, src->mem, src->memlen);
	for (int i = 0; i < src->m->n_blocks; i++)
		dst->sb[i].cnt = src->sb[i].cnt;
	dst->pos = src->pos;
	dst->count = src->count;
	dst->samples = src->samples;
}

uint64_t s4m_stream_samples(const struct s4m_stream *st)
{
	return st->samples;
}

/* g[o0 .. o0+T) of matvec_rows for RB rows at once (T, RB constants at each call), the RB x T
 * sums held in registers over all inputs: each weight vector loaded feeds RB rows, and the
 * RB x T / lanes independent FMA chains hide the FMA latency (4 cycles, 2 units: 8 chains). */
static inline __attribute__((always_inline)) void
mv_tile(const float *restrict wT, const float *restrict b, const float *restrict x,
	float *restrict g, int In, int O, int o0, int T, int RB)
{
	float acc[4][64]; // (RB, T) outputs o0.. of rows 0..RB
	for (int q = 0; q < RB; q++)
		for (int j = 0; j < T; j++)
			acc[q][j] = b[o0 + j];
	for (int i = 0; i < In; i++) {
		const float *restrict w = wT + (size_t)i * O + o0; // (T)
		for (int q = 0; q < RB; q++) {
			float xi = x[(size_t)q * In + i];
			for (int j = 0; j < T; j++)
				acc[q][j] += w[j] * xi;
		}
	}
	for (int q = 0; q < RB; q++)
		for (int j = 0; j < T; j++)
			g[(size_t)q * O + o0 + j] = acc[q][j];
}

/* Output tiles of width T (a constant at each call) from o0 on, as many as fit in O, each for all
 * R rows in turn, four rows at a time (then three or two; 8- and 1-wide tiles one at a time),
 * its weights in cache across the rows; returns the first output left. */
static inline __attribute__((always_inline)) int
mv_tiles(const float *restrict wT, const float *restrict b, const float *restrict x, float *restrict g,
	 int In, int O, size_t R, int o0, int T)
{
	for (; o0 + T <= O; o0 += T) {
		size_t r = 0;
		if (T >= 32) {
			for (; r + 4 <= R; r += 4)
				mv_tile(wT, b, x + r * In, g + r * O, In, O, o0, T, 4);
			if (R - r == 3) {
				mv_tile(wT, b, x + r * In, g + r * O, In, O, o0, T, 3);
				r = R;
			} else if (R - r == 2) {
				mv_tile(wT, b, x + r * In, g + r * O, In, O, o0, T, 2);
				r = R;
			}
		}
		for (; r < R; r++)
			mv_tile(wT, b, x + r * In, g + r * O, In, O, o0, T, 1);
	}
	return o0;
}

/* g (R, O) = b + W x for R rows of x (R, In), W given transposed, wT (In, O): outputs in tiles of
 * 64, 32, 8 and 1, the sums of a tile in registers (one store per output, not one per input), a
 * tile's weights read for all rows in turn; each g[o] is summed over inputs in increasing
 * order, as in conv mode. */
S4M_HOT
static void matvec_rows(const float *restrict wT, const float *restrict b, const float *restrict x,
			float *restrict g, int In, int O, size_t R)
{
	int o0 = mv_tiles(wT, b, x, g, In, O, R, 0, 64);
	o0 = mv_tiles(wT, b, x, g, In, O, R, o0, 32);
	o0 = mv_tiles(wT, b, x, g, In, O, R, o0, 8);
	mv_tiles(wT, b, x, g, In, O, R, o0, 1);
}

/* u += GLU(out(gelu(y + D z))), the position-wise part of a block, for R rows (R, H). */
S4M_HOT
static void block_tail(const struct s4m__block *b, float *restrict u, const float *restrict z,
		       float *restrict y, float *restrict g, size_t R)
{
	int H = b->H;
	for (size_t r = 0; r < R; r++)
		for (int h = 0; h < H; h++)
			y[r * H + h] = s4m__gelu(y[r * H + h] + b->D[h] * z[r * H + h]);
	matvec_rows(b->out_wT, b->out_b, y, g, H, 2 * H, R);
	for (size_t r = 0; r < R; r++)
		for (int h = 0; h < H; h++)
			u[r * H + h] += g[r * 2 * H + h] * s4m__sigmoid(g[r * 2 * H + H + h]);
}

/* Rows of one chunk at one block for S streams in phase (the same pooling counters): stream j's
 * R rows are u + j R H. z, y, g are as large; S = 1 uses the stream's own buffers. */
struct rows {
	struct s4m_stream *const *st;
	int S;
	float *u, *z, *y, *g;
};

/* Block i over R rows per stream, in place, then its pooling and widen: returns the rows per
 * stream that leave it, (S, rows, Hout) in u. Everything but the SSM (per stream: its own
 * state) and the pooling (its own accumulator) runs over the S R rows at once. */
static size_t block_rows(const struct rows *w, int i, size_t R)
{
	const struct s4m_model *m = w->st[0]->m;
	const struct s4m__block *b = &m->b[i];
	const int H = b->H, S = w->S;
	float *restrict u = w->u, *restrict z = w->z;
	const size_t N = (size_t)S * R; // rows of all streams

	for (size_t r = 0; r < N && m->prenorm; r++)
		s4m__norm1(u + r * H, z + r * H, H, m->batchnorm, b->norm_a, b->norm_b);
	if (!m->prenorm)
		memcpy(z, u, N * (size_t)H * sizeof *z);
	for (int j = 0; j < S; j++)
		s4k_step_rows(&b->step, w->st[j]->sb[i].x, z + (size_t)j * R * H, w->y + (size_t)j * R * H, R);
	block_tail(b, u, z, w->y, w->g, N);
	for (size_t r = 0; r < N && !m->prenorm; r++)
		s4m__norm1(u + r * H, u + r * H, H, m->batchnorm, b->norm_a, b->norm_b);
	size_t out = R;
	if (b->pool > 1) {
		/* stream j's output o goes to row j (R / pool + 1) + o <= j R + r, written after its
		 * input row r was summed: pooling in place is safe, then the rows are closed up */
		float inv = 1.f / (float)b->pool;
		for (int j = 0; j < S; j++) {
			struct sblk *s = &w->st[j]->sb[i];
			const float *in = u + (size_t)j * R * H;
			out = 0;
			for (size_t r = 0; r < R; r++) {
				for (int h = 0; h < H; h++)
					s->acc[h] += in[r * H + h];
				if (++s->cnt < b->pool)
					continue;
				float *o = u + ((size_t)j * (R / b->pool + 1) + out++) * H;
				for (int h = 0; h < H; h++) {
					o[h] = s->acc[h] * inv;
					s->acc[h] = 0.f;
				}
				s->cnt = 0;
			}
		}
		/* streams in phase leave the same number of rows: close the gaps between them */
		for (int j = 1; j < S && out; j++)
			memmove(u + (size_t)j * out * H, u + (size_t)j * (R / b->pool + 1) * H,
				out * (size_t)H * sizeof *u);
	}
	if (b->widen_w && out) {
		/* u (S out, H) -> z (S out, Hout) -> u */
		matvec_rows(b->widen_wT, b->widen_b, u, z, H, b->Hout, (size_t)S * out);
		memcpy(u, z, (size_t)S * out * (size_t)b->Hout * sizeof *u);
	}
	return out;
}

/* A final feature vector f (Hlast) enters the decoder window. */
static void window_add(struct s4m_stream *st, const float *f)
{
	const struct s4m_model *m = st->m;
	int Hl = m->Hlast;
	float *row = st->ring + st->pos * (size_t)Hl;
	if (st->count == m->Wf)
		for (int h = 0; h < Hl; h++)
			st->sum[h] -= row[h];
	memcpy(row, f, (size_t)Hl * sizeof *row);
	for (int h = 0; h < Hl; h++)
		st->sum[h] += f[h];
	if (st->count < m->Wf)
		st->count++;
	if (++st->pos == m->Wf) {
		/* wrapped: recompute the sum exactly, so subtraction errors never accumulate */
		st->pos = 0;
		for (int h = 0; h < Hl; h++)
			st->sum[h] = 0;
		for (size_t r = 0; r < st->count; r++)
			for (int h = 0; h < Hl; h++)
				st->sum[h] += st->ring[r * (size_t)Hl + h];
	}
}

/* n samples into each of w's streams (x[j] for stream j), in chunks of up to CHUNK, every block
 * over all the streams' rows of a chunk at once. Returns the decoder steps per stream. */
static size_t push_rows(const struct rows *w, const float *const *x, size_t n)
{
	const struct s4m_model *m = w->st[0]->m;
	const int H0 = m->b[0].H, Hl = m->Hlast, S = w->S;
	size_t steps = 0;
	for (size_t c0 = 0; c0 < n; c0 += CHUNK) {
		size_t R = n - c0 < CHUNK ? n - c0 : CHUNK;
		for (int j = 0; j < S; j++) {
			float *restrict u = w->u + (size_t)j * R * H0; // (R, H0) of stream j
			for (size_t r = 0; r < R; r++) {
				float v = x[j][c0 + r];
				if (!isfinite(v))
					v = 0.f; /* one bad sample must not poison a state that lives for days */
				for (int h = 0; h < H0; h++)
					u[r * H0 + h] = m->enc_w[h] * v + m->enc_b[h];
			}
		}
		for (int i = 0; i < m->n_blocks && R; i++)
			R = block_rows(w, i, R);
		for (int j = 0; j < S; j++)
			for (size_t r = 0; r < R; r++) {
				float *f = w->u + ((size_t)j * R + r) * Hl; // (Hlast) a final step's features
				if (m->final_norm)
					s4m__norm1(f, f, Hl, m->batchnorm, m->fn_a, m->fn_b);
				window_add(w->st[j], f);
			}
		steps += R;
	}
	for (int j = 0; j < S; j++)
		w->st[j]->samples += n;
	return steps;
}

size_t s4m_stream_push(struct s4m_stream *st, const float *x, size_t n)
{
	struct rows w = {.st = &st, .S = 1, .u = st->u, .z = st->z, .y = st->y, .g = st->g};
	return push_rows(&w, &x, n);
}

void s4m_stream_logits(const struct s4m_stream *st, float *logits)
{
	const struct s4m_model *m = st->m;
	int Hl = m->Hlast;
	const float *last = NULL;
	double inv = 0;
	if (st->count) {
		if (m->decoder_last)
			last = st->ring + ((st->pos + m->Wf - 1) % m->Wf) * (size_t)Hl;
		else
			inv = 1.0 / (double)st->count;
	}
	for (int k = 0; k < m->n_labels; k++) {
		const float *w = m->dec_w + (size_t)k * Hl;
		double s = m->dec_b[k];
		if (last)
			for (int h = 0; h < Hl; h++)
				s += (double)w[h] * last[h];
		else if (st->count)
			for (int h = 0; h < Hl; h++)
				s += (double)w[h] * (float)(st->sum[h] * inv);
		logits[k] = (float)s;
	}
}

void s4m_stream_scores(const struct s4m_stream *st, float *probs)
{
	int K = st->m->n_labels;
	s4m_stream_logits(st, probs);
	float mx = probs[0];
	for (int k = 1; k < K; k++)
		if (probs[k] > mx)
			mx = probs[k];
	double s = 0;
	for (int k = 0; k < K; k++) {
		probs[k] = expf(probs[k] - mx);
		s += probs[k];
	}
	for (int k = 0; k < K; k++)
		probs[k] = (float)(probs[k] / s);
}

/* ---- several streams stepped together ---- */

struct s4m_batch {
	const struct s4m_model *m;
	int max;                /* streams */
	float *u, *z, *y, *g;   /* (max) x a stream's chunk buffers */
	struct s4m_stream **slots; /* (max) for callers that gather streams (s4m_relay_batch_push) */
	const float **xs;       /* (max) and their inputs */
	void *mem;
};

struct s4m_batch *s4m_batch_new(const struct s4m_model *m, int max_streams, char *err, size_t errlen)
{
	if (m->bidir || max_streams < 1 || max_streams > 4096) {
		s4k_seterr(err, errlen, m->bidir ? "this model is bidirectional (it looks ahead in time), so it cannot run in stream mode; use file (conv) mode."
						 : "a batch of %d streams is out of range (1..4096).", max_streams);
		return NULL;
	}
	struct s4m_batch *b = calloc(1, sizeof *b);
	size_t f = chunk_floats(m) * (size_t)max_streams;
	if (b) {
		b->slots = calloc((size_t)max_streams, sizeof *b->slots);
		b->xs = calloc((size_t)max_streams, sizeof *b->xs);
	}
	if (!b || !b->slots || !b->xs || posix_memalign(&b->mem, 64, 5 * f * sizeof(float))) {
		if (b) {
			free(b->slots);
			free(b->xs);
		}
		free(b);
		s4k_seterr(err, errlen, "out of memory for a batch of %d streams.", max_streams);
		return NULL;
	}
	b->m = m;
	b->max = max_streams;
	b->u = b->mem;
	b->z = b->u + f;
	b->y = b->z + f;
	b->g = b->y + f; /* 2 f */
	return b;
}

void s4m_batch_free(struct s4m_batch *b)
{
	if (b) {
		free(b->mem);
		free(b->slots);
		free(b->xs);
	}
	free(b);
}

int s4m__batch_max(const struct s4m_batch *b)
{
	return b->max;
}

struct s4m_stream **s4m__batch_slots(struct s4m_batch *b)
{
	return b->slots;
}

const float **s4m__batch_xs(struct s4m_batch *b)
{
	return b->xs;
}

/* Streams of the batch's model whose pooling counters match stream 0's step together. */
static int in_phase(const struct s4m_batch *b, struct s4m_stream *const *st, int S)
{
	for (int j = 0; j < S; j++) {
		if (st[j]->m != b->m)
			return 0;
		for (int i = 0; j && i < b->m->n_blocks; i++)
			if (st[j]->sb[i].cnt != st[0]->sb[i].cnt)
				return 0;
	}
	return 1;
}

int s4m_batch_push(struct s4m_batch *b, struct s4m_stream *const *st, int S, const float *const *x, size_t n)
{
	if (S > b->max || !in_phase(b, st, S)) {
		for (int j = 0; j < S; j++)
			s4m_stream_push(st[j], x[j], n);
		return 0;
	}
	struct rows w = {.st = st, .S = S, .u = b->u, .z = b->z, .y = b->y, .g = b->g};
	push_rows(&w, x, n);
	return 1;
}
