/* capture.c - PortAudio input stream whose callback feeds an SPSC ring.
 *
 * DESIGN. The callback runs on PortAudio's real-time thread. It converts the 16-bit frames it is
 * given to floats in a scratch buffer sized at open time (in pieces of CHUNK frames, so any
 * period length works), writes each piece to the ring with one all-or-nothing ring_write(),
 * updates relaxed atomic counters and posts a semaphore (sem_post is async-signal-safe and does
 * not block). It never allocates, locks, blocks or logs. With max_frames set it writes exactly
 * that many frames and returns paComplete, which is how tests stop the ALSA file PCM before its
 * end (it delivers garbage after EOF instead of an error).
 *
 * Failure detection happens on the control thread in capture_poll(): a negative
 * Pa_IsStreamActive(), a stream that stopped without reaching max_frames, or no callback for
 * stall_s seconds (an unplugged USB device may simply go quiet). The caller then closes, calls
 * capture_fini()/capture_init() to rescan, and reopens with back-off.
 *
 * Closing must not hang the caller. PortAudio's ALSA thread runs with cancellation disabled
 * except at its own test points, so when a driver blocks inside a read (a quiet device behind a
 * blocking plugin: the `type file` PCM on a FIFO whose writer stopped) Pa_AbortStream() joins
 * that thread until the driver lets go, possibly forever. capture_close() therefore sets
 * `closing` (from then on the callback returns paAbort without touching the ring or the
 * semaphore) and runs Pa_CloseStream() on a detached thread, waiting for it at most CLOSE_WAIT_S.
 * A close that takes longer is left to finish on its own: that thread frees the capture when
 * the driver lets go (a one-word atomic exchange decides who frees), and until then `stuck` is
 * non-zero, capture_open() refuses with a sentence and capture_init()/capture_fini() defer
 * Pa_Terminate(), so no PortAudio function is ever called concurrently with the stuck close
 * (PortAudio is not thread-safe) and no second stream can write the same ring.
 */
#include "capture.h"

#include <alsa/asoundlib.h>
#include <ctype.h>
#include <errno.h>
#include <jack/jack.h>
#include <portaudio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/clock.h"
#include "../common/err.h"

#define CHUNK 1024 /* frames converted per ring_write */
#define CLOSE_WAIT_S 1.0 /* longest capture_close() waits for PortAudio to close a stream */

enum { CLOSE_PENDING, CLOSE_DONE, CLOSE_ABANDONED }; /* struct capture.close_state */

struct capture {
	PaStream *s;
	struct ring *ring;
	sem_t *wake;
	int channels, rate;
	uint64_t max_frames;
	double stall_s;
	float *scratch;                 /* (CHUNK, channels) */
	char name[256];
	_Atomic uint64_t frames;        /* frames seen by the callback (written or dropped) */
	_Atomic uint64_t callbacks;
	_Atomic uint64_t overflows;
	_Atomic int done;
	_Atomic int closing;            /* set by capture_close: the callback returns paAbort at once */
	_Atomic int close_state;        /* CLOSE_*: the closer thread and capture_close agree who frees */
	/* control thread only */
	uint64_t seen_callbacks;
	double seen_at;
};

static int pa_refs;
static int pa_live;                 /* Pa_Initialize'd and not yet terminated (control thread) */
static _Atomic int stuck;           /* closes still waiting for the driver (see DESIGN) */
static char stuck_name[256];        /* the device of the last one (control thread) */

static int libs_quiet = 1;

/* ALSA's and JACK's own diagnostics go to stderr line by line: on a machine without a sound
 * card or a JACK server every PortAudio scan prints about a hundred of them (probing each ALSA
 * plugin, each attempt to reach jackd), which buried the one sentence that matters. */
static void alsa_quiet(const char *file, int line, const char *fn, int e, const char *fmt, ...)
{
	(void)file, (void)line, (void)fn, (void)e, (void)fmt;
}

static void jack_quiet(const char *msg)
{
	(void)msg;
}

void capture_set_quiet(int quiet)
{
	libs_quiet = quiet;
}

int capture_init(char *err, size_t errlen)
{
	if (pa_refs++ > 0)
		return 0;
	if (libs_quiet) {
		snd_lib_error_set_handler(alsa_quiet);
		jack_set_error_function(jack_quiet);
		jack_set_info_function(jack_quiet);
	} else {
		snd_lib_error_set_handler(NULL); /* ALSA's default: stderr */
	}
	if (pa_live) { /* a Pa_Terminate deferred while a close was stuck */
		if (atomic_load_explicit(&stuck, memory_order_acquire))
			return 0; /* still stuck: no rescan; capture_open() says why */
		Pa_Terminate();
		pa_live = 0;
	}
	PaError e = Pa_Initialize();
	if (e != paNoError) {
		pa_refs = 0;
		s4k_seterr(err, errlen, "cannot initialise PortAudio: %s", Pa_GetErrorText(e));
		return -EIO;
	}
	pa_live = 1;
	return 0;
}

void capture_fini(void)
{
	if (pa_refs > 0 && --pa_refs == 0 && !atomic_load_explicit(&stuck, memory_order_acquire)) {
		Pa_Terminate();
		pa_live = 0;
	}
}

static const int common_rates[] = {8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000};

int capture_list(struct capture_device *out, int max, char *err, size_t errlen)
{
	int nd = Pa_GetDeviceCount();
	if (nd < 0) {
		s4k_seterr(err, errlen, "cannot list audio devices: %s", Pa_GetErrorText(nd));
		return -EIO;
	}
	int n = 0;
	for (int i = 0; i < nd; i++) {
		const PaDeviceInfo *d = Pa_GetDeviceInfo(i);
		if (!d || d->maxInputChannels < 1)
			continue;
		if (n < max) {
			struct capture_device *o = &out[n];
			memset(o, 0, sizeof *o);
			o->index = i;
			snprintf(o->name, sizeof o->name, "%s", d->name ? d->name : "?");
			const PaHostApiInfo *api = Pa_GetHostApiInfo(d->hostApi);
			snprintf(o->api, sizeof o->api, "%s", api && api->name ? api->name : "?");
			o->max_channels = d->maxInputChannels;
			o->default_rate = d->defaultSampleRate;
			PaStreamParameters ip = {.device = i, .channelCount = 1, .sampleFormat = paInt16,
						 .suggestedLatency = d->defaultLowInputLatency};
			for (size_t r = 0; r < sizeof common_rates / sizeof common_rates[0]; r++)
				if (o->n_rates < CAPTURE_MAX_RATES &&
				    Pa_IsFormatSupported(&ip, NULL, common_rates[r]) == paFormatIsSupported)
					o->rates[o->n_rates++] = common_rates[r];
		}
		n++;
	}
	return n;
}

static int find_device(const char *want, char *err, size_t errlen)
{
	int nd = Pa_GetDeviceCount();
	if (!want || !*want) {
		PaDeviceIndex i = Pa_GetDefaultInputDevice();
		if (i == paNoDevice) {
			s4k_seterr(err, errlen, "there is no default audio input device");
			return -ENODEV;
		}
		return i;
	}
	int digits = 1;
	for (const char *p = want; *p; p++)
		digits &= isdigit((unsigned char)*p) != 0;
	if (digits) {
		long i = strtol(want, NULL, 10);
		const PaDeviceInfo *d = i < nd ? Pa_GetDeviceInfo((PaDeviceIndex)i) : NULL;
		if (!d || d->maxInputChannels < 1) {
			s4k_seterr(err, errlen, "there is no input device with index %s", want);
			return -ENODEV;
		}
		return (int)i;
	}
	int sub = -1;
	for (int i = 0; i < nd; i++) {
		const PaDeviceInfo *d = Pa_GetDeviceInfo(i);
		if (!d || d->maxInputChannels < 1 || !d->name)
			continue;
		if (!strcmp(d->name, want))
			return i;
		if (sub < 0 && strstr(d->name, want))
			sub = i;
	}
	if (sub < 0)
		s4k_seterr(err, errlen, "no input device matches '%s' ('s4kws devices' lists them)", want);
	return sub < 0 ? -ENODEV : sub;
}

static int callback(const void *in, void *out, unsigned long n, const PaStreamCallbackTimeInfo *ti,
		    PaStreamCallbackFlags flags, void *user)
{
	struct capture *c = user;
	(void)out;
	(void)ti;
	if (atomic_load_explicit(&c->closing, memory_order_acquire))
		return paAbort; /* being closed: the ring may belong to the next stream soon */
	if (flags & paInputOverflow)
		atomic_fetch_add_explicit(&c->overflows, 1, memory_order_relaxed);
	uint64_t have = atomic_load_explicit(&c->frames, memory_order_relaxed);
	int complete = 0;
	if (c->max_frames && have + n >= c->max_frames) {
		n = (unsigned long)(c->max_frames - have);
		complete = 1;
	}
	const int16_t *x = in;
	const size_t ch = (size_t)c->channels;
	for (unsigned long done = 0; x && done < n;) {
		size_t k = n - done < CHUNK ? n - done : CHUNK;
		const int16_t *src = x + done * ch;
		for (size_t i = 0; i < k * ch; i++)
			c->scratch[i] = (float)src[i] * (1.0f / 32768.0f);
		ring_write(c->ring, c->scratch, k * ch); /* full: dropped and counted by the ring */
		done += k;
	}
	atomic_fetch_add_explicit(&c->frames, n, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->callbacks, 1, memory_order_relaxed);
	if (complete)
		atomic_store_explicit(&c->done, 1, memory_order_release);
	if (c->wake)
		sem_post(c->wake);
	return complete ? paComplete : paContinue;
}

struct capture *capture_open(const struct capture_params *p, struct ring *ring, sem_t *wake,
			     char *err, size_t errlen)
{
	if (p->channels < 1 || p->rate < 1 || p->frames_per_buffer < 1) {
		s4k_seterr(err, errlen, "capture needs at least one channel, a rate and a period");
		return NULL;
	}
	if (atomic_load_explicit(&stuck, memory_order_acquire)) {
		s4k_seterr(err, errlen, "the last stream on '%s' is still stuck in the audio driver; no device can "
			   "be opened until the driver lets go of it", stuck_name);
		return NULL;
	}
	int dev = find_device(p->device, err, errlen);
	if (dev < 0)
		return NULL;
	const PaDeviceInfo *d = Pa_GetDeviceInfo(dev);
	if (d->maxInputChannels < p->channels) {
		s4k_seterr(err, errlen, "device '%s' has %d input channel%s, not %d", d->name,
			   d->maxInputChannels, d->maxInputChannels == 1 ? "" : "s", p->channels);
		return NULL;
	}
	PaStreamParameters ip = {.device = dev, .channelCount = p->channels, .sampleFormat = paInt16,
				 .suggestedLatency = d->defaultLowInputLatency};
	double rate = p->rate;
	if (Pa_IsFormatSupported(&ip, NULL, rate) != paFormatIsSupported) {
		rate = d->defaultSampleRate;
		PaError e = Pa_IsFormatSupported(&ip, NULL, rate);
		if (e != paFormatIsSupported) {
			s4k_seterr(err, errlen, "device '%s' supports neither %d Hz nor its default %.0f Hz "
				   "with %d channel%s: %s", d->name, p->rate, rate, p->channels,
				   p->channels == 1 ? "" : "s", Pa_GetErrorText(e));
			return NULL;
		}
	}
	struct capture *c = calloc(1, sizeof *c);
	if (c)
		c->scratch = malloc((size_t)CHUNK * (size_t)p->channels * sizeof *c->scratch);
	if (!c || !c->scratch) {
		if (c)
			free(c);
		s4k_seterr(err, errlen, "out of memory opening the capture device");
		return NULL;
	}
	c->ring = ring;
	c->wake = wake;
	c->channels = p->channels;
	c->rate = (int)rate;
	c->max_frames = p->max_frames;
	if (p->max_s > 0) {
		uint64_t f = (uint64_t)(p->max_s * rate + 0.5);
		if (f < 1)
			f = 1;
		if (!c->max_frames || f < c->max_frames)
			c->max_frames = f;
	}
	c->stall_s = p->stall_s > 0 ? p->stall_s : 5.0;
	snprintf(c->name, sizeof c->name, "%s", d->name);
	PaError e = Pa_OpenStream(&c->s, &ip, NULL, rate, p->frames_per_buffer, paClipOff, callback, c);
	if (e != paNoError) {
		s4k_seterr(err, errlen, "cannot open device '%s' (%d ch, %.0f Hz): %s", d->name, p->channels,
			   rate, Pa_GetErrorText(e));
		free(c->scratch);
		free(c);
		return NULL;
	}
	return c;
}

int capture_rate(const struct capture *c)
{
	return c->rate;
}

const char *capture_name(const struct capture *c)
{
	return c->name;
}

int capture_start(struct capture *c, char *err, size_t errlen)
{
	c->seen_callbacks = 0;
	c->seen_at = s4k_mono_s();
	PaError e = Pa_StartStream(c->s);
	if (e != paNoError) {
		s4k_seterr(err, errlen, "cannot start capture on '%s': %s", c->name, Pa_GetErrorText(e));
		return -EIO;
	}
	return 0;
}

enum capture_state capture_poll(struct capture *c, char *err, size_t errlen)
{
	PaError a = Pa_IsStreamActive(c->s);
	if (atomic_load_explicit(&c->done, memory_order_acquire))
		return CAPTURE_DONE;
	if (a < 0) {
		s4k_seterr(err, errlen, "capture on '%s' failed: %s", c->name, Pa_GetErrorText(a));
		return CAPTURE_ERROR;
	}
	if (a == 0) {
		s4k_seterr(err, errlen, "capture on '%s' stopped by itself", c->name);
		return CAPTURE_ERROR;
	}
	uint64_t cb = atomic_load_explicit(&c->callbacks, memory_order_relaxed);
	double now = s4k_mono_s();
	if (cb != c->seen_callbacks) {
		c->seen_callbacks = cb;
		c->seen_at = now;
	} else if (now - c->seen_at > c->stall_s) {
		s4k_seterr(err, errlen, "no audio from '%s' for %.1f s", c->name, now - c->seen_at);
		return CAPTURE_ERROR;
	}
	return CAPTURE_RUNNING;
}

uint64_t capture_frames(const struct capture *c)
{
	return atomic_load_explicit(&c->frames, memory_order_relaxed);
}

uint64_t capture_overflows(const struct capture *c)
{
	return atomic_load_explicit(&c->overflows, memory_order_relaxed);
}

static void capture_free(struct capture *c)
{
	free(c->scratch);
	free(c);
}

/* Detached: close the stream, then free the capture if capture_close stopped waiting. */
static void *closer_main(void *arg)
{
	struct capture *c = arg;
	Pa_CloseStream(c->s);
	if (atomic_exchange_explicit(&c->close_state, CLOSE_DONE, memory_order_acq_rel) == CLOSE_ABANDONED) {
		capture_free(c);
		atomic_fetch_sub_explicit(&stuck, 1, memory_order_release);
	}
	return NULL;
}

void capture_close(struct capture *c)
{
	if (!c)
		return;
	atomic_store_explicit(&c->closing, 1, memory_order_release);
	if (!c->s) {
		capture_free(c);
		return;
	}
	pthread_attr_t attr;
	pthread_t t;
	int started = pthread_attr_init(&attr) == 0;
	if (started) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		started = pthread_create(&t, &attr, closer_main, c) == 0;
		pthread_attr_destroy(&attr);
	}
	if (!started) { /* no thread to spare: close here, however long it takes */
		Pa_CloseStream(c->s);
		capture_free(c);
		return;
	}
	double until = s4k_mono_s() + CLOSE_WAIT_S;
	while (atomic_load_explicit(&c->close_state, memory_order_acquire) != CLOSE_DONE && s4k_mono_s() < until) {
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
	}
	/* named and counted before c is handed over (the closer may free it at once after the
	 * exchange), so that `stuck` never reads 0 while the closer may still be in PortAudio */
	snprintf(stuck_name, sizeof stuck_name, "%s", c->name);
	atomic_fetch_add_explicit(&stuck, 1, memory_order_acq_rel);
	if (atomic_exchange_explicit(&c->close_state, CLOSE_ABANDONED, memory_order_acq_rel) == CLOSE_DONE) {
		atomic_fetch_sub_explicit(&stuck, 1, memory_order_release); /* closed in time */
		capture_free(c);
	}
}

int capture_closing(void)
{
	return atomic_load_explicit(&stuck, memory_order_acquire);
}
