/* admit.c - HTTP admission and request deadlines (see admit.h).
 *
 * DESIGN: a doubly linked list of the open connections, oldest arrival first, under one mutex.
 * Each entry is the connection's socket context (libmicrohttpd hands it back in every
 * notification and through MHD_CONNECTION_INFO_SOCKET_CONTEXT), so a phase change is O(1); an
 * arrival at the limit scans the list for the eviction candidate (at most max_connections +
 * ADMIT_SPARE entries, microseconds). The reaper thread wakes every 100 ms (a condition
 * variable with a monotonic clock, so that admit_free ends it at once) and shuts down what is
 * past its deadline. Times are CLOCK_MONOTONIC seconds (common/clock.h).
 */
#define _GNU_SOURCE
#include "admit.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"

struct conn {
	struct conn *prev, *next;
	struct admit *a;
	int fd;
	struct sockaddr_storage addr;  /* the peer, for the per-address limit */
	enum admit_phase phase;
	double since;                  /* monotonic s: when the current phase began */
	int shut;                      /* shutdown(2) done; waiting for the close notification */
};

struct admit {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t reaper;
	int started, quit;
	unsigned max;
	struct conn *head, *tail;      /* arrival order */
	struct admit_stats st;
};

static int same_addr(const struct sockaddr_storage *x, const struct sockaddr_storage *y)
{
	if (x->ss_family != y->ss_family)
		return 0;
	if (x->ss_family == AF_INET)
		return !memcmp(&((const struct sockaddr_in *)x)->sin_addr, &((const struct sockaddr_in *)y)->sin_addr,
			       sizeof(struct in_addr));
	if (x->ss_family == AF_INET6)
		return !memcmp(&((const struct sockaddr_in6 *)x)->sin6_addr,
			       &((const struct sockaddr_in6 *)y)->sin6_addr, sizeof(struct in6_addr));
	return 0;
}

/* Under mu. */
static void shut(struct conn *c)
{
	if (!c->shut && c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);
	c->shut = 1;
}

/* The connection still sending its head that has been at it longest (from address addr only,
 * when given), other than `not`; NULL if none. Under mu. */
static struct conn *oldest_head(struct admit *a, const struct conn *not, const struct sockaddr_storage *addr,
				unsigned *n_same)
{
	struct conn *best = NULL;
	unsigned n = 0;
	for (struct conn *c = a->head; c; c = c->next) {
		if (c == not || c->shut || c->phase != ADMIT_HEAD || (addr && !same_addr(&c->addr, addr)))
			continue;
		n++;
		if (!best || c->since < best->since)
			best = c;
	}
	if (n_same)
		*n_same = n;
	return best;
}

static void arrive(struct admit *a, struct conn *c)
{
	pthread_mutex_lock(&a->mu);
	c->prev = a->tail;
	if (a->tail)
		a->tail->next = c;
	else
		a->head = c;
	a->tail = c;
	unsigned open = 0;
	for (struct conn *x = a->head; x; x = x->next)
		open += !x->shut;
	unsigned same = 0;
	struct conn *victim = oldest_head(a, c, &c->addr, &same);
	if (same >= ADMIT_PER_ADDRESS && victim) {
		shut(victim); /* this address's oldest head makes room for its newest */
		a->st.evicted++;
		open--;
	}
	if (open > a->max) {
		victim = oldest_head(a, c, NULL, NULL);
		if (victim) {
			shut(victim);
			a->st.evicted++;
		} else {
			shut(c); /* every slot is being answered: refuse the newcomer */
			a->st.refused++;
		}
	}
	pthread_mutex_unlock(&a->mu);
}

static void leave(struct admit *a, struct conn *c)
{
	pthread_mutex_lock(&a->mu);
	if (c->prev)
		c->prev->next = c->next;
	else
		a->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		a->tail = c->prev;
	pthread_mutex_unlock(&a->mu);
	free(c);
}

void admit_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
		  enum MHD_ConnectionNotificationCode code)
{
	struct admit *a = cls;
	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (*socket_context)
			leave(a, *socket_context);
		*socket_context = NULL;
		return;
	}
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return; /* untracked: it keeps libmicrohttpd's own idle timeout */
	c->a = a;
	c->phase = ADMIT_HEAD;
	c->since = s4k_mono_s();
	const union MHD_ConnectionInfo *fi = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	c->fd = fi ? fi->connect_fd : -1;
	const union MHD_ConnectionInfo *ai = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ai && ai->client_addr) {
		size_t len = ai->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
								    : sizeof(struct sockaddr_in);
		memcpy(&c->addr, ai->client_addr, len);
	}
	*socket_context = c;
	arrive(a, c);
}

void admit_phase(struct MHD_Connection *conn, enum admit_phase p)
{
	const union MHD_ConnectionInfo *si = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn *c = si ? si->socket_context : NULL;
	if (!c)
		return;
	pthread_mutex_lock(&c->a->mu);
	if (c->phase != p) {
		c->phase = p;
		c->since = s4k_mono_s();
	}
	pthread_mutex_unlock(&c->a->mu);
}

static void *reaper(void *arg)
{
	struct admit *a = arg;
	pthread_mutex_lock(&a->mu);
	while (!a->quit) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 100000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&a->cv, &a->mu, &ts);
		double now = s4k_mono_s();
		for (struct conn *c = a->head; c; c = c->next) {
			double limit = c->phase == ADMIT_HEAD ? ADMIT_HEAD_S : c->phase == ADMIT_BODY ? ADMIT_BODY_S : 0;
			if (!c->shut && limit > 0 && now - c->since > limit) {
				shut(c);
				a->st.timed_out++;
			}
		}
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

unsigned admit_hard_limit(unsigned max_connections)
{
	return max_connections + ADMIT_SPARE;
}

struct admit *admit_new(unsigned max_connections, char *err, size_t errlen)
{
	struct admit *a = calloc(1, sizeof *a);
	if (!a) {
		s4k_seterr(err, errlen, "out of memory for HTTP admission");
		return NULL;
	}
	a->max = max_connections;
	pthread_mutex_init(&a->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->cv, &ca);
	pthread_condattr_destroy(&ca);
	int e = pthread_create(&a->reaper, NULL, reaper, a);
	if (e) {
		s4k_seterr(err, errlen, "cannot start the HTTP admission thread: %s", strerror(e));
		admit_free(a);
		return NULL;
	}
	a->started = 1;
	return a;
}

void admit_stats(struct admit *a, struct admit_stats *out)
{
	pthread_mutex_lock(&a->mu);
	*out = a->st;
	out->open = 0;
	for (struct conn *c = a->head; c; c = c->next)
		out->open++;
	pthread_mutex_unlock(&a->mu);
}

void admit_free(struct admit *a)
{
	if (!a)
		return;
	if (a->started) {
		pthread_mutex_lock(&a->mu);
		a->quit = 1;
		pthread_cond_signal(&a->cv);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->reaper, NULL);
	}
	while (a->head) { /* none after MHD_stop_daemon; this only frees what a failed start left */
		struct conn *c = a->head;
		a->head = c->next;
		free(c);
	}
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a);
}
