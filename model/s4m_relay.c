/* s4m_relay.c - step mode with bounded context: two steppers taking turns.
 *
 * Design: a network trained on one-second clips with half a second of preroll in front (the
 * recipe's first two stages) has never heard hours of audio, and its accuracy drops as the audio
 * before a keyword grows (weights/MODEL_CARD.md, "stream context"). A relay runs two steppers
 * over the same samples, restarted alternately every `period` samples, half a period apart,
 * each from the state a lone clip starts from (zero state, then the model's preroll of zeros -
 * whole decoder steps, s4m_load checks that - computed once in s4m_relay_new and copied in).
 * Scores come from the older stepper, which has heard between period/2 and period samples: with
 * period = 2 s its decoder window always holds real audio and at most 1 s more lies before it.
 * It costs two steppers' work per channel. period 0 is one stepper that is never restarted
 * (plain s4m_stream behaviour, the daemon's default: the shipped model was trained with 1.5 s
 * of preceding audio and is better without restarts).
 *
 * The same scores in conv mode: with h = period/2, stepper 0 restarts at h, 3h, 5h, ... and
 * stepper 1 at 2h, 4h, ... (both start at 0; stepper 0 counts as h old then, so it is read
 * first). After t samples the older one was restarted at r = max(0, (t / h - 1) h), so the
 * scores equal s4m_conv's on [s4m_preroll zeros | x[r .. t)]: daemon/scan's conv mode.
 */
#include "s4m_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct s4m_relay {
	const struct s4m_model *m;
	size_t period;                 /* samples (even); 0 = never restart */
	struct s4m_stream *st[2];
	struct s4m_stream *primed;     /* zero state + preroll zeros (NULL when period == 0) */
	size_t age[2];                 /* samples since each stepper's last restart */
	uint64_t samples;
};

struct s4m_relay *s4m_relay_new(const struct s4m_model *m, size_t period, char *err, size_t errlen)
{
	size_t half = period / 2;
	if (period && (half < s4m_hop(m) || half % s4m_hop(m))) {
		s4k_seterr(err, errlen,
			   "a stepper restart period of %zu samples is too short or not a multiple of twice the model hop (%zu)",
			   period, 2 * s4m_hop(m));
		return NULL;
	}
	struct s4m_relay *r = calloc(1, sizeof *r);
	if (!r) {
		s4k_seterr(err, errlen, "out of memory for a stream.");
		return NULL;
	}
	r->m = m;
	r->period = period;
	if (!(r->st[0] = s4m_stream_new(m, err, errlen)) ||
	    (period && (!(r->st[1] = s4m_stream_new(m, err, errlen)) ||
			!(r->primed = s4m_stream_new(m, err, errlen))))) {
		s4m_relay_free(r);
		return NULL;
	}
	if (period) {
		/* the state every restart copies: a lone clip's preroll of zeros from the zero state */
		static const float zeros[1024];
		for (size_t left = s4m_preroll(m); left;) {
			size_t k = left < 1024 ? left : 1024;
			s4m_stream_push(r->primed, zeros, k);
			left -= k;
		}
	}
	s4m_relay_reset(r);
	return r;
}

void s4m_relay_free(struct s4m_relay *r)
{
	if (!r)
		return;
	s4m_stream_free(r->st[0]);
	s4m_stream_free(r->st[1]);
	s4m_stream_free(r->primed);
	free(r);
}

void s4m_relay_reset(struct s4m_relay *r)
{
	r->samples = 0;
	if (!r->period) {
		s4m_stream_reset(r->st[0]);
		return;
	}
	/* stepper 0 stands for a restart at -period/2: it is read first and restarts at period/2 */
	s4m_stream_copy(r->st[0], r->primed);
	s4m_stream_copy(r->st[1], r->primed);
	r->age[0] = r->period / 2;
	r->age[1] = 0;
}

size_t s4m_relay_push(struct s4m_relay *r, const float *x, size_t n)
{
	r->samples += n;
	if (!r->period)
		return s4m_stream_push(r->st[0], x, n);
	size_t steps = 0;
	while (n) {
		/* up to the next restart of either stepper */
		size_t k = n;
		for (int i = 0; i < 2; i++)
			if (r->period - r->age[i] < k)
				k = r->period - r->age[i];
		steps += s4m_stream_push(r->st[0], x, k);
		s4m_stream_push(r->st[1], x, k);
		for (int i = 0; i < 2; i++) {
			r->age[i] += k;
			if (r->age[i] == r->period) {
				s4m_stream_copy(r->st[i], r->primed);
				r->age[i] = 0;
			}
		}
		x += k;
		n -= k;
	}
	return steps;
}

/* The relays' steppers through s4m_batch_push: the S steppers 0 together, then the S steppers
 * 1, between the restarts (which all relays reach at the same sample when they share the
 * period and the ages); anything else, one relay at a time. */
int s4m_relay_batch_push(struct s4m_batch *b, struct s4m_relay *const *r, int S, const float *const *x,
			 size_t n)
{
	int same = S <= s4m__batch_max(b);
	for (int j = 1; same && j < S; j++)
		same = r[j]->period == r[0]->period && r[j]->age[0] == r[0]->age[0] &&
		       r[j]->age[1] == r[0]->age[1];
	if (!same) {
		for (int j = 0; j < S; j++)
			s4m_relay_push(r[j], x[j], n);
		return 0;
	}
	struct s4m_stream **sl = s4m__batch_slots(b);
	const float **xs = s4m__batch_xs(b);
	const size_t period = r[0]->period;
	int together = 1;
	for (int j = 0; j < S; j++)
		r[j]->samples += n;
	for (size_t off = 0; off < n;) {
		size_t k = n - off;
		for (int i = 0; period && i < 2; i++)
			if (period - r[0]->age[i] < k)
				k = period - r[0]->age[i];
		for (int i = 0; i < (period ? 2 : 1); i++) {
			for (int j = 0; j < S; j++) {
				sl[j] = r[j]->st[i];
				xs[j] = x[j] + off;
			}
			together &= s4m_batch_push(b, sl, S, xs, k);
		}
		for (int j = 0; period && j < S; j++)
			for (int i = 0; i < 2; i++) {
				r[j]->age[i] += k;
				if (r[j]->age[i] == period) {
					s4m_stream_copy(r[j]->st[i], r[j]->primed);
					r[j]->age[i] = 0;
				}
			}
		off += k;
	}
	return together;
}

/* The stepper whose scores count: the older one (period/2 <= age < period once running). */
static const struct s4m_stream *reader(const struct s4m_relay *r)
{
	return r->period && r->age[1] > r->age[0] ? r->st[1] : r->st[0];
}

void s4m_relay_logits(const struct s4m_relay *r, float *logits)
{
	s4m_stream_logits(reader(r), logits);
}

void s4m_relay_scores(const struct s4m_relay *r, float *probs)
{
	s4m_stream_scores(reader(r), probs);
}

uint64_t s4m_relay_samples(const struct s4m_relay *r)
{
	return r->samples;
}

size_t s4m_relay_period(const struct s4m_relay *r)
{
	return r->period;
}
