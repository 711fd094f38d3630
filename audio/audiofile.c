/* audiofile.c - libsndfile reader with mono mixing, rate conversion and truncation checks.
 *
 * DESIGN: file mode must take whatever a user points it at (any container and encoding that
 * libsndfile decodes, any rate, any channel count, any length) and turn it into mono float
 * samples at the model's rate without ever holding a whole long recording in memory. An
 * af_file owns one SNDFILE, one block of interleaved frames as decoded, one block of the
 * selected channel (or the mix) and one streaming resampler; af_read_mono() pulls blocks
 * through that pipeline on demand, so memory is a few blocks whatever the file's length.
 * af_limit_rate() puts a second converter in front (file rate -> a lower rate, in the same
 * streaming way), so that a 16 kHz file can reach the model with exactly the band an 8 kHz
 * recording has; the pipeline then holds one more block (pbuf) and ends only once that first
 * converter has been flushed.
 *
 * libsndfile is lenient about damaged files, which is right for a player but wrong for a
 * classifier that must say when it did not see the whole recording. Two checks turn its
 * leniency into errors: at open, a WAV/AIFF whose header declares more data than the file holds
 * (libsndfile silently shortens it and notes "(should be ...)" in its log), and at the end of
 * reading, any container that declared a frame count the decoder could not reach (truncated
 * FLAC, Ogg without end of stream). Opening goes through open(2) first so that missing files,
 * permissions, directories and empty files get their own plain sentences rather than
 * libsndfile's generic "format not recognised". Memory input uses sf_open_virtual() over the
 * caller's buffer.
 */
#include "audiofile.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/err.h"

#define AF_BLOCK_SAMPLES 16384   /* interleaved samples decoded per sf_readf_float() call */

/* libsndfile keeps the error of a failed open in one process-wide variable (sf_error(NULL)),
 * so opens are serialised to give each file its own message. Reads use per-file state. */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* fork() while another thread opens a file would leave the child's copy of the lock held
 * forever: take it around fork (daemon/isolate.c decodes uploads in a forked child) */
static void fork_prepare(void)
{
	pthread_mutex_lock(&open_lock);
}

static void fork_done(void)
{
	pthread_mutex_unlock(&open_lock);
}

static void fork_safe(void)
{
	pthread_atfork(fork_prepare, fork_done, fork_done);
}

struct af_mem {
	const unsigned char *buf;
	sf_count_t len, pos;
};

struct af_file {
	SNDFILE *sf;
	struct af_info info;
	struct af_mem mem;        /* memory input (sf_open_virtual) */
	int is_mpeg;              /* MPEG frame counts are estimates: no truncation check */
	size_t block;             /* frames per decoded block */
	float *ibuf;              /* (block, channels) decoded frames */
	float *mbuf;              /* (block) selected channel or mix */
	size_t mpos, mlen;        /* unconsumed part of mbuf */
	uint64_t frames_read;     /* file frames decoded so far */
	int eof;                  /* nothing more reaches mbuf (decoder and pre-stage done) */
	int dec_eof;              /* the decoder has nothing more */
	int channel;              /* AF_MIX or a channel index */
	int out_rate;             /* Hz of af_read_mono() output */
	enum rs_quality quality;
	struct rs rs;             /* (limited or file) rate -> out_rate */
	int have_rs;
	int limit;                /* af_limit_rate() Hz, 0 = off */
	struct rs pre;            /* file rate -> limit, when the file is above it */
	int have_pre;
	float *pbuf;              /* (block) channel or mix at the file rate, before pre */
	size_t ppos, plen;        /* unconsumed part of pbuf */
	size_t mcap;              /* capacity of mbuf, frames */
	uint64_t scrubbed;        /* decoded samples replaced by 0 (af_scrubbed) */
};

/* Non-finite samples (and absurd ones, beyond AF_MAX_ABS) become 0 and are counted: one NaN
 * would otherwise poison every state it reaches, and with it every later answer. */
static void scrub(struct af_file *f, float *restrict x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!(fabsf(x[i]) <= AF_MAX_ABS)) { /* NaN compares false */
			x[i] = 0.0f;
			f->scrubbed++;
		}
}

uint64_t af_scrubbed(const struct af_file *f)
{
	return f->scrubbed;
}

/* ---- memory input: libsndfile's virtual I/O over a caller's buffer ---- */

static sf_count_t vm_len(void *u)
{
	return ((struct af_mem *)u)->len;
}

static sf_count_t vm_seek(sf_count_t off, int whence, void *u)
{
	struct af_mem *m = u;
	sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->len;
	sf_count_t p = base + off;
	if (p < 0 || p > m->len)
		return -1;
	m->pos = p;
	return p;
}

static sf_count_t vm_read(void *ptr, sf_count_t count, void *u)
{
	struct af_mem *m = u;
	if (count <= 0)
		return 0;
	sf_count_t n = m->len - m->pos;
	if (n > count)
		n = count;
	memcpy(ptr, m->buf + m->pos, (size_t)n);
	m->pos += n;
	return n;
}

static sf_count_t vm_write(const void *ptr, sf_count_t count, void *u)
{
	(void)ptr;
	(void)count;
	(void)u;
	return 0;
}

static sf_count_t vm_tell(void *u)
{
	return ((struct af_mem *)u)->pos;
}

/* ---- open ---- */

static int sf_code_to_errno(int code)
{
	switch (code) {
	case SF_ERR_NO_ERROR:
		return 0;
	case SF_ERR_SYSTEM:
		return -EIO;
	case SF_ERR_UNRECOGNISED_FORMAT:
	case SF_ERR_UNSUPPORTED_ENCODING:
		return -ENOTSUP;
	default:
		return -EBADMSG;
	}
}

/* 1 when libsndfile's open log says a data chunk is shorter than its header declares. Streamed
 * WAVs (recorders writing to a pipe) declare 0 or a huge placeholder size; those are fine. */
static int log_says_truncated(SNDFILE *sf)
{
	char log[8192];
	sf_command(sf, SFC_GET_LOG_INFO, log, sizeof log);
	for (const char *p = log; (p = strstr(p, "(should be ")) != NULL; p++) {
		const char *line = p;
		while (line > log && line[-1] != '\n')
			line--;
		if (strncmp(line, "data", 4) && strncmp(line, "SSND", 4))
			continue;
		const char *colon = strchr(line, ':');
		if (!colon || colon > p)
			continue;
		unsigned long long declared = strtoull(colon + 1, NULL, 10);
		unsigned long long actual = strtoull(p + 11, NULL, 10);
		if (declared > actual && declared != 0 && declared < 0x7fff0000ULL)
			return 1;
	}
	return 0;
}

static void open_error(int code, char *err, size_t errlen)
{
	if (code == SF_ERR_UNRECOGNISED_FORMAT)
		s4k_seterr(err, errlen, "not an audio format libsndfile reads");
	else if (code == SF_ERR_UNSUPPORTED_ENCODING)
		s4k_seterr(err, errlen, "unsupported encoding (libsndfile: %s)", sf_strerror(NULL));
	else if (code == SF_ERR_SYSTEM)
		s4k_seterr(err, errlen, "read error (libsndfile: %s)", sf_strerror(NULL));
	else
		s4k_seterr(err, errlen, "malformed or truncated file (libsndfile: %s)",
			   sf_strerror(NULL));
}

static struct af_file *finish_open(struct af_file *f, SF_INFO *in, char *err, size_t errlen)
{
	if (in->channels < 1 || in->samplerate < 1) {
		s4k_seterr(err, errlen, "unsupported: the file declares %d channels at %d Hz",
			   in->channels, in->samplerate);
		goto fail;
	}
	if (in->channels > 1024 || in->samplerate > 768000) {
		s4k_seterr(err, errlen, "unsupported: %d channels at %d Hz is beyond 1024 channels "
			   "and 768 kHz", in->channels, in->samplerate);
		goto fail;
	}
	if (log_says_truncated(f->sf)) {
		s4k_seterr(err, errlen, "truncated: the header declares more audio data than the "
			   "file holds");
		goto fail;
	}
	f->info.rate = in->samplerate;
	f->info.channels = in->channels;
	f->info.frames = in->frames >= 0 && in->frames < SF_COUNT_MAX ? (int64_t)in->frames : -1;
	SF_FORMAT_INFO fi = {.format = in->format & SF_FORMAT_TYPEMASK};
	f->info.format = sf_command(NULL, SFC_GET_FORMAT_INFO, &fi, sizeof fi) == 0 && fi.name ?
		fi.name : "unknown";
	SF_FORMAT_INFO si = {.format = in->format & SF_FORMAT_SUBMASK};
	f->info.subtype = sf_command(NULL, SFC_GET_FORMAT_INFO, &si, sizeof si) == 0 && si.name ?
		si.name : "unknown";
	f->is_mpeg = (in->format & SF_FORMAT_TYPEMASK) == SF_FORMAT_MPEG;

	f->block = AF_BLOCK_SAMPLES / (size_t)in->channels;
	if (f->block < 256)
		f->block = 256;
	f->ibuf = malloc(f->block * (size_t)in->channels * sizeof *f->ibuf);
	f->mbuf = malloc(f->block * sizeof *f->mbuf);
	f->mcap = f->block;
	if (!f->ibuf || !f->mbuf) {
		s4k_seterr(err, errlen, "out of memory opening an audio file");
		goto fail;
	}
	f->channel = AF_MIX;
	f->quality = RS_BEST;
	if (af_set_output(f, AF_MIX, 0, RS_BEST, err, errlen) < 0)
		goto fail;
	return f;
fail:
	af_close(f);
	return NULL;
}

struct af_file *af_open(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		s4k_seterr(err, errlen, "cannot open: %s", strerror(errno));
		return NULL;
	}
	struct stat sb;
	if (fstat(fd, &sb) < 0) {
		s4k_seterr(err, errlen, "cannot stat: %s", strerror(errno));
		close(fd);
		return NULL;
	}
	if (S_ISDIR(sb.st_mode)) {
		s4k_seterr(err, errlen, "is a directory, not an audio file");
		close(fd);
		return NULL;
	}
	if (S_ISREG(sb.st_mode) && sb.st_size == 0) {
		s4k_seterr(err, errlen, "empty file (0 bytes)");
		close(fd);
		return NULL;
	}
	struct af_file *f = calloc(1, sizeof *f);
	if (!f) {
		s4k_seterr(err, errlen, "out of memory opening an audio file");
		close(fd);
		return NULL;
	}
	SF_INFO in = {0};
	pthread_once(&fork_once, fork_safe);
	pthread_mutex_lock(&open_lock);
	f->sf = sf_open_fd(fd, SFM_READ, &in, SF_TRUE);
	if (!f->sf) {
		open_error(sf_error(NULL), err, errlen);
		pthread_mutex_unlock(&open_lock);
		close(fd);   /* libsndfile does not take the descriptor when the open fails */
		free(f);
		return NULL;
	}
	pthread_mutex_unlock(&open_lock);
	return finish_open(f, &in, err, errlen);
}

struct af_file *af_open_memory(const void *buf, size_t len, char *err, size_t errlen)
{
	if (!buf || len == 0) {
		s4k_seterr(err, errlen, "empty audio data (0 bytes)");
		return NULL;
	}
	if (len > (size_t)INT64_MAX) {
		s4k_seterr(err, errlen, "audio data too large");
		return NULL;
	}
	struct af_file *f = calloc(1, sizeof *f);
	if (!f) {
		s4k_seterr(err, errlen, "out of memory opening audio data");
		return NULL;
	}
	f->mem.buf = buf;
	f->mem.len = (sf_count_t)len;
	static SF_VIRTUAL_IO vio = {
		.get_filelen = vm_len, .seek = vm_seek, .read = vm_read,
		.write = vm_write, .tell = vm_tell,
	};
	SF_INFO in = {0};
	pthread_once(&fork_once, fork_safe);
	pthread_mutex_lock(&open_lock);
	f->sf = sf_open_virtual(&vio, SFM_READ, &in, &f->mem);
	if (!f->sf) {
		open_error(sf_error(NULL), err, errlen);
		pthread_mutex_unlock(&open_lock);
		free(f);
		return NULL;
	}
	pthread_mutex_unlock(&open_lock);
	return finish_open(f, &in, err, errlen);
}

void af_close(struct af_file *f)
{
	if (!f)
		return;
	if (f->sf)
		sf_close(f->sf);
	if (f->have_rs)
		rs_fini(&f->rs);
	if (f->have_pre)
		rs_fini(&f->pre);
	free(f->ibuf);
	free(f->mbuf);
	free(f->pbuf);
	free(f);
}

const struct af_info *af_info(const struct af_file *f)
{
	return &f->info;
}

uint64_t af_frames_read(const struct af_file *f)
{
	return f->frames_read;
}

/* (Re)build the converters for f->channel, f->out_rate, f->quality and f->limit. The new
 * converters are made before the old ones go, so a failure leaves f as it was. */
static int build_pipeline(struct af_file *f, int out_rate, enum rs_quality q, int limit,
			  char *err, size_t errlen)
{
	int pre = limit > 0 && limit < f->info.rate;
	int mid = pre ? limit : f->info.rate;
	struct rs np, nr;
	if (pre) {
		int rc = rs_init(&np, f->info.rate, limit, 1, q, err, errlen);
		if (rc < 0)
			return rc;
		/* buffers only grow, and are kept at once: a failure here leaves f usable */
		size_t mcap = rs_max_out(&np, f->block);
		if (!f->pbuf)
			f->pbuf = malloc(f->block * sizeof *f->pbuf);
		if (f->pbuf && mcap > f->mcap) {
			float *m = realloc(f->mbuf, mcap * sizeof *m);
			if (m) {
				f->mbuf = m;
				f->mcap = mcap;
			}
		}
		if (!f->pbuf || mcap > f->mcap) {
			rs_fini(&np);
			s4k_seterr(err, errlen, "out of memory for a rate converter");
			return -ENOMEM;
		}
	}
	int rc = rs_init(&nr, mid, out_rate, 1, q, err, errlen);
	if (rc < 0) {
		if (pre)
			rs_fini(&np);
		return rc;
	}
	if (f->have_rs)
		rs_fini(&f->rs);
	if (f->have_pre)
		rs_fini(&f->pre);
	f->rs = nr;
	f->have_rs = 1;
	f->have_pre = pre;
	if (pre)
		f->pre = np;
	f->out_rate = out_rate;
	f->quality = q;
	f->limit = limit;
	return 0;
}

int af_set_output(struct af_file *f, int channel, int rate, enum rs_quality q,
		  char *err, size_t errlen)
{
	if (channel != AF_MIX && (channel < 0 || channel >= f->info.channels)) {
		s4k_seterr(err, errlen, "channel %d does not exist (the file has %d)",
			   channel, f->info.channels);
		return -EINVAL;
	}
	int rc = build_pipeline(f, rate ? rate : f->info.rate, q, f->limit, err, errlen);
	if (rc < 0)
		return rc;
	f->channel = channel;
	return 0;
}

int af_limit_rate(struct af_file *f, int hz, char *err, size_t errlen)
{
	if (hz < 0 || hz > 768000) {
		s4k_seterr(err, errlen, "rate limit %d Hz is outside 0..768000 Hz", hz);
		return -EINVAL;
	}
	/* unchanged (classify passes its --max-rate, usually 0, for every file): no new
	 * converters, which for a file at another rate would mean another src_new() */
	if (hz == f->limit)
		return 0;
	return build_pipeline(f, f->out_rate, f->quality, hz, err, errlen);
}

/* Decode the next block into ibuf. Returns frames (0 at the end) or a negative errno. */
static long decode_block(struct af_file *f, char *err, size_t errlen)
{
	if (f->dec_eof)
		return 0;
	sf_count_t got = sf_readf_float(f->sf, f->ibuf, (sf_count_t)f->block);
	if (got < 0)
		got = 0;
	scrub(f, f->ibuf, (size_t)got * (size_t)f->info.channels);
	int code = sf_error(f->sf);
	if (code != SF_ERR_NO_ERROR) {
		s4k_seterr(err, errlen, "corrupt or truncated: decoding failed after %llu frames "
			   "(libsndfile: %s)", (unsigned long long)f->frames_read, sf_strerror(f->sf));
		return sf_code_to_errno(code) == -EIO ? -EIO : -EBADMSG;
	}
	f->frames_read += (uint64_t)got;
	if (got == 0) {
		f->dec_eof = 1;
		if (f->info.frames >= 0 && !f->is_mpeg && f->frames_read < (uint64_t)f->info.frames) {
			s4k_seterr(err, errlen, "truncated or corrupt: the header declares %lld frames "
				   "but only %llu could be decoded", (long long)f->info.frames,
				   (unsigned long long)f->frames_read);
			return -EBADMSG;
		}
		if (f->info.frames < 0 && f->frames_read == 0) {
			/* e.g. an Ogg stream cut before its first page: nothing decodes */
			char log[4096];
			sf_command(f->sf, SFC_GET_LOG_INFO, log, sizeof log);
			if (strstr(log, "ended unexpectedly")) {
				s4k_seterr(err, errlen, "truncated: the stream ends unexpectedly and no "
					   "audio could be decoded");
				return -EBADMSG;
			}
		}
	}
	return (long)got;
}

long af_read(struct af_file *f, float *out, size_t max, char *err, size_t errlen)
{
	size_t ch = (size_t)f->info.channels, n = 0;
	while (n < max) {
		size_t want = max - n < f->block ? max - n : f->block;
		if (f->eof)
			break;
		sf_count_t got = sf_readf_float(f->sf, out + n * ch, (sf_count_t)want);
		if (got < 0)
			got = 0;
		scrub(f, out + n * ch, (size_t)got * ch);
		int code = sf_error(f->sf);
		if (code != SF_ERR_NO_ERROR) {
			s4k_seterr(err, errlen, "corrupt or truncated: decoding failed after %llu "
				   "frames (libsndfile: %s)", (unsigned long long)f->frames_read,
				   sf_strerror(f->sf));
			return sf_code_to_errno(code) == -EIO ? -EIO : -EBADMSG;
		}
		f->frames_read += (uint64_t)got;
		n += (size_t)got;
		if (got == 0) {
			f->eof = 1;
			if (f->info.frames >= 0 && !f->is_mpeg &&
			    f->frames_read < (uint64_t)f->info.frames) {
				s4k_seterr(err, errlen, "truncated or corrupt: the header declares %lld "
					   "frames but only %llu could be decoded",
					   (long long)f->info.frames, (unsigned long long)f->frames_read);
				return -EBADMSG;
			}
		}
	}
	return (long)n;
}

/* The decoded block's n frames, one channel or their mean, into dst (n). */
static void pick_channel(const struct af_file *f, size_t n, float *restrict dst)
{
	size_t ch = (size_t)f->info.channels;
	const float *restrict in = f->ibuf;   /* (n, ch) */
	if (ch == 1) {
		memcpy(dst, in, n * sizeof *dst);
	} else if (f->channel != AF_MIX) {
		for (size_t i = 0; i < n; i++)
			dst[i] = in[i * ch + (size_t)f->channel];
	} else {
		float scale = 1.0f / (float)ch;
		for (size_t i = 0; i < n; i++) {
			float s = 0.0f;
			for (size_t c = 0; c < ch; c++)
				s += in[i * ch + c];
			dst[i] = s * scale;
		}
	}
}

/* Refill mbuf: the next decoded block, through the pre-stage converter when there is one.
 * Returns frames (0 at the end, then f->eof is set) or a negative errno. */
static long fill_mono(struct af_file *f, char *err, size_t errlen)
{
	if (!f->have_pre) {
		long got = decode_block(f, err, errlen);
		if (got <= 0) {
			f->eof = f->dec_eof;
			return got;
		}
		pick_channel(f, (size_t)got, f->mbuf);
		f->mpos = 0;
		f->mlen = (size_t)got;
		return got;
	}
	for (int stalls = 0;;) {
		if (f->ppos == f->plen && !f->dec_eof) {
			long got = decode_block(f, err, errlen);
			if (got < 0)
				return got;
			pick_channel(f, (size_t)got, f->pbuf);
			f->ppos = 0;
			f->plen = (size_t)got;
			continue;   /* at the end (got == 0) dec_eof is set: flush below */
		}
		size_t used;
		long got = rs_process(&f->pre, f->pbuf + f->ppos, f->plen - f->ppos, &used, f->mbuf,
				      f->mcap, f->dec_eof);
		if (got < 0) {
			s4k_seterr(err, errlen, "resampling %d Hz to %d Hz failed", f->info.rate,
				   f->limit);
			return got;
		}
		f->ppos += used;
		if (got > 0) {
			f->mpos = 0;
			f->mlen = (size_t)got;
			return got;
		}
		if (used == 0 && f->dec_eof) {
			f->eof = 1;   /* the pre-stage is flushed too */
			f->mpos = f->mlen = 0;
			return 0;
		}
		if (used == 0 && ++stalls > 2) {
			s4k_seterr(err, errlen, "resampling %d Hz to %d Hz stalled", f->info.rate,
				   f->limit);
			return -EIO;
		}
	}
}

long af_read_mono(struct af_file *f, float *out, size_t max, char *err, size_t errlen)
{
	size_t n = 0;
	int stalls = 0;
	if (max > LONG_MAX)
		max = LONG_MAX;
	while (n < max) {
		if (f->mpos == f->mlen && !f->eof) {
			long got = fill_mono(f, err, errlen);
			if (got < 0)
				return got;
			continue;
		}
		size_t used;
		long got = rs_process(&f->rs, f->mbuf + f->mpos, f->mlen - f->mpos, &used,
				      out + n, max - n, f->eof);
		if (got < 0) {
			s4k_seterr(err, errlen, "resampling %d Hz to %d Hz failed", f->info.rate,
				   f->out_rate);
			return got;
		}
		f->mpos += used;
		n += (size_t)got;
		if (got == 0 && used == 0) {
			if (f->eof)
				break;   /* decoder and resampler are both empty */
			if (++stalls > 2) {
				s4k_seterr(err, errlen, "resampling %d Hz to %d Hz stalled",
					   f->info.rate, f->out_rate);
				return -EIO;
			}
		} else {
			stalls = 0;
		}
	}
	return (long)n;
}

int af_rewind(struct af_file *f, char *err, size_t errlen)
{
	if (sf_seek(f->sf, 0, SEEK_SET) < 0) {
		s4k_seterr(err, errlen, "cannot seek back to the start (%s)", sf_strerror(f->sf));
		return -EIO;
	}
	f->frames_read = 0;
	f->scrubbed = 0;
	f->eof = f->dec_eof = 0;
	f->mpos = f->mlen = 0;
	f->ppos = f->plen = 0;
	rs_reset(&f->rs);
	if (f->have_pre)
		rs_reset(&f->pre);
	return 0;
}

int af_load(struct af_file *f, size_t max, float **out, size_t *n, char *err, size_t errlen)
{
	*out = NULL;
	*n = 0;
	/* First guess from the declared length, so a normal clip needs one allocation. */
	size_t cap = 4096;
	if (f->info.frames > 0) {
		double est = (double)f->info.frames * f->out_rate / f->info.rate + 64.0;
		if (est < (double)max + 64.0)
			cap = (size_t)est;
	}
	float *y = malloc(cap * sizeof *y);
	if (!y) {
		s4k_seterr(err, errlen, "out of memory reading audio");
		return -ENOMEM;
	}
	size_t len = 0;
	for (;;) {
		if (len == cap) {
			size_t ncap = cap * 2;
			if (ncap > max + 64)
				ncap = max + 64;
			if (ncap <= cap) {
				free(y);
				s4k_seterr(err, errlen, "longer than %zu samples at %d Hz (%.1f s)", max,
					   f->out_rate, (double)max / f->out_rate);
				return -EFBIG;
			}
			float *t = realloc(y, ncap * sizeof *y);
			if (!t) {
				free(y);
				s4k_seterr(err, errlen, "out of memory reading audio");
				return -ENOMEM;
			}
			y = t;
			cap = ncap;
		}
		long got = af_read_mono(f, y + len, cap - len, err, errlen);
		if (got < 0) {
			free(y);
			return (int)got;
		}
		if (got == 0)
			break;
		len += (size_t)got;
		if (len > max) {
			free(y);
			s4k_seterr(err, errlen, "longer than %zu samples at %d Hz (%.1f s)", max,
				   f->out_rate, (double)max / f->out_rate);
			return -EFBIG;
		}
	}
	*out = y;
	*n = len;
	return 0;
}

int af_is_audio_name(const char *path)
{
	static const char *const ext[] = {
		"wav", "wave", "flac", "ogg", "oga", "opus", "mp3", "mp2", "mp1", "m1a", "mpga",
		"aif", "aiff", "aifc", "au", "snd", "caf", "w64", "rf64", "voc", "sd2", "paf",
		"iff", "svx", "sf", "ircam", "htk", "pvf", "xi", "avr", "wve", "sds", "mpc",
	};
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	const char *dot = strrchr(base, '.');
	if (!dot || dot == base)
		return 0;
	for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
		if (!strcasecmp(dot + 1, ext[i]))
			return 1;
	return 0;
}
