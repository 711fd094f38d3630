/* audiofile.h - read any audio file libsndfile knows, in bounded blocks, as float samples.
 *
 * Usage:
 *   char err[S4K_ERR_LEN];
 *   struct af_file *f = af_open("talk.ogg", err, sizeof err);     // or af_open_memory(buf, len, ...)
 *   if (!f) { fprintf(stderr, "talk.ogg: %s\n", err); ... }
 *   af_info(f)->rate, ->channels, ->frames                         // what the file holds
 *   af_set_output(f, AF_MIX, 16000, RS_BEST, err, sizeof err);      // mono mix at 16 kHz
 *   af_limit_rate(f, 8000, err, sizeof err);   // optional: only the band an 8 kHz file has
 *   float block[4096];
 *   long n;
 *   while ((n = af_read_mono(f, block, 4096, err, sizeof err)) > 0)  // any length, bounded memory
 *           consume(block, n);
 *   if (n < 0) ... err says why (corrupt, truncated, I/O)
 *   af_close(f);
 *
 *   float *x; size_t nx;                                            // or a whole short clip
 *   af_load(f, 10 * 16000, &x, &nx, err, sizeof err);              // refuses longer; free(x)
 *
 * Samples are floats in [-1, 1] (libsndfile's normalisation; float files may exceed it). The
 * mix is the mean of the channels, so identical channels give exactly that channel. A file is
 * "truncated" when the header declares more audio than can be decoded (checked at open for
 * WAV-like headers, at the end of reading for the rest): reads then fail with -EBADMSG.
 * Threads: an af_file belongs to one thread at a time; different files may be opened and read
 * in parallel (opens are serialised inside, because libsndfile reports open errors globally).
 */
#ifndef S4KWS_AUDIO_AUDIOFILE_H
#define S4KWS_AUDIO_AUDIOFILE_H

#include <stddef.h>
#include <stdint.h>

#include "resample.h"

#define AF_MIX (-1)   /* af_set_output(): mean of all channels */

struct af_info {
	int rate;             /* Hz, as stored in the file */
	int channels;         /* >= 1 */
	int64_t frames;       /* declared length in frames, or -1 when the container does not say */
	const char *format;   /* libsndfile's container name, e.g. "FLAC (Free Lossless Audio Codec)" */
	const char *subtype;  /* libsndfile's encoding name, e.g. "Signed 16 bit PCM" */
};

struct af_file;

/* Open a file (any path that open(2) reads: regular files, pipes, /dev/fd/N). Returns NULL and
 * one sentence in err when the file is missing, unreadable, a directory, empty (0 bytes), not a
 * recognised audio format, malformed or truncated (-errno is not returned; err says which).
 * The output starts as the mix at the file's own rate. */
struct af_file *af_open(const char *path, char *err, size_t errlen);
/* The same over a buffer the caller keeps alive and unchanged until af_close() (HTTP uploads). */
struct af_file *af_open_memory(const void *buf, size_t len, char *err, size_t errlen);
void af_close(struct af_file *f);

const struct af_info *af_info(const struct af_file *f);

/* Choose what af_read_mono() delivers: channel AF_MIX or 0..channels-1, converted to rate Hz
 * (0 = the file's rate) with quality q. Call before the first read or right after af_rewind().
 * Returns 0 or -EINVAL (bad channel or rate; sentence in err) or -ENOMEM. */
int af_set_output(struct af_file *f, int channel, int rate, enum rs_quality q,
		  char *err, size_t errlen);
/* Band-limit the output to what a recording at hz Hz holds: a file stored above hz Hz is first
 * converted down to hz (streaming, af_set_output()'s quality), then to the output rate; files at
 * or below hz are unchanged. 0 turns it off. Kept across af_set_output(); call before the first
 * read or right after af_rewind(). Returns 0, -EINVAL (sentence in err) or -ENOMEM. */
int af_limit_rate(struct af_file *f, int hz, char *err, size_t errlen);
/* Read up to max output frames (one channel, see af_set_output) into out. Returns the number
 * written, 0 at the end, or a negative errno with a sentence in err: -EBADMSG (corrupt or
 * truncated data), -EIO (read error). Returns fewer than max only near the end. */
long af_read_mono(struct af_file *f, float *out /* (max) */, size_t max, char *err, size_t errlen);
/* Read up to max frames of all channels, interleaved, at the file's rate, no conversion.
 * Same returns as af_read_mono(). Do not mix the two readers on one open file. */
long af_read(struct af_file *f, float *out /* (max, channels) */, size_t max, char *err, size_t errlen);
/* Go back to the first frame (e.g. to read the next channel); keeps the output settings.
 * Returns 0 or -EIO (unseekable input such as a pipe; sentence in err). */
int af_rewind(struct af_file *f, char *err, size_t errlen);
/* Frames of the file consumed so far (at the file's rate). */
uint64_t af_frames_read(const struct af_file *f);

/* Read all remaining output (af_read_mono) into a new malloc()ed buffer (*out, *n frames; the
 * caller frees; *out is non-NULL on success even when *n == 0). Fails with -EFBIG without
 * reading further once the output would exceed max frames, so memory stays bounded. */
int af_load(struct af_file *f, size_t max, float **out, size_t *n, char *err, size_t errlen);

/* Decoded samples that were not finite numbers, or beyond +-AF_MAX_ABS (no recording is 36 dB
 * over full scale; such values come from damaged float files), and were replaced by 0 before
 * any conversion, counted over all channels since af_open or the last af_rewind. Callers
 * report the count: the answer then rests on the rest of the file. */
#define AF_MAX_ABS 64.0f
uint64_t af_scrubbed(const struct af_file *f);

/* 1 when the file name ends in an extension of a format libsndfile reads (.wav .flac .ogg
 * .opus .mp3 .aiff ...; case-insensitive), else 0. Used to pick audio files out of directories. */
int af_is_audio_name(const char *path);

#endif
