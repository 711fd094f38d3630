/* door.c - accept HTTP connections, answer first lines that are not requests (see door.h).
 *
 * DESIGN: one thread owns the listening socket and the waiting connections (an array of at most
 * DOOR_PENDING, oldest first) and polls them with a wake-up eventfd, 100 ms at a time so that
 * deadlines are kept without a timer. A readable connection is peeked (MSG_PEEK, up to
 * DOOR_PEEK bytes) and judged; a passed one leaves the array for libmicrohttpd with its bytes
 * unread. A refused one gets its short answer with one non-blocking send (it fits any socket
 * buffer), a write shutdown, and what it had sent is read away before close, so that the close
 * sends FIN and not a reset that could destroy the answer in flight. Counters are atomics, read
 * by /metrics from another thread.
 */
#define _GNU_SOURCE
#include "door.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "admit.h"
#include "common/clock.h"
#include "common/err.h"

#define DOOR_PEEK 1024 /* bytes looked at: leading empty lines and the method */

struct waiting {
	int fd;
	double since; /* monotonic s: arrival */
	struct sockaddr_storage peer;
	socklen_t peer_len;
};

struct door {
	int lfd, wake, port;
	pthread_t thread;
	int started;
	door_pass_fn pass;
	void *ud;
	struct waiting w[DOOR_PENDING];
	int n;
	_Atomic uint64_t malformed, timed_out, evicted;
};

static int tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

int door_judge(const unsigned char *b, size_t n, int ended)
{
	size_t i = 0;
	while (i < n && (b[i] == '\r' || b[i] == '\n'))
		i++;
	size_t m = i;
	while (m < n && m - i < DOOR_METHOD_MAX && tchar(b[m]))
		m++;
	if (m < n && m > i && b[m] == ' ')
		return 1;
	if (m < n || m - i >= DOOR_METHOD_MAX || n >= DOOR_PEEK)
		return -1; /* a byte that is neither a token character nor the space after one */
	return ended ? -1 : 0;
}

/* Answer `status` (a status line's code and reason) with a one-sentence JSON body, and close. */
static void finish(int fd, const char *status, const char *error)
{
	char body[96], msg[256];
	int bn = snprintf(body, sizeof body, "{\"error\":\"%s\"}", error);
	int n = snprintf(msg, sizeof msg,
			 "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
			 "Connection: close\r\n\r\n%s",
			 status, bn, body);
	ssize_t r = send(fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)r; /* a peer that cannot take 150 bytes gets the close alone */
	shutdown(fd, SHUT_WR);
	char sink[4096];
	for (int i = 0; i < 64 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
		;
	close(fd);
}

static void drop(struct door *d, int i)
{
	memmove(&d->w[i], &d->w[i + 1], (size_t)(d->n - i - 1) * sizeof d->w[0]);
	d->n--;
}

static void accept_all(struct door *d)
{
	for (;;) {
		struct waiting c = {.peer_len = sizeof c.peer};
		c.fd = accept4(d->lfd, (struct sockaddr *)&c.peer, &c.peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c.fd < 0)
			return; /* EAGAIN, or a transient error (EMFILE, ECONNABORTED): next round */
		if (d->n == DOOR_PENDING) {
			close(d->w[0].fd);
			drop(d, 0);
			atomic_fetch_add(&d->evicted, 1);
		}
		c.since = s4k_mono_s();
		d->w[d->n++] = c;
	}
}

/* Judge connection i after poll said `revents`; returns 1 if it left the array. */
static int look(struct door *d, int i, short revents)
{
	struct waiting *c = &d->w[i];
	if (revents & POLLNVAL) {
		drop(d, i);
		return 1;
	}
	unsigned char b[DOOR_PEEK];
	ssize_t n = recv(c->fd, b, sizeof b, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (n <= 0) { /* closed before sending anything, or reset: nobody to answer */
		close(c->fd);
		drop(d, i);
		return 1;
	}
	int v = door_judge(b, (size_t)n, (revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0);
	if (v == 0)
		return 0;
	struct waiting keep = *c;
	drop(d, i);
	if (v > 0) {
		d->pass(d->ud, keep.fd, (const struct sockaddr *)&keep.peer, keep.peer_len);
	} else {
		atomic_fetch_add(&d->malformed, 1);
		finish(keep.fd, "400 Bad Request", "malformed request line");
	}
	return 1;
}

static void *run(void *arg)
{
	struct door *d = arg;
	struct pollfd p[DOOR_PENDING + 2];
	for (;;) {
		int n = d->n;
		for (int i = 0; i < n; i++)
			p[i] = (struct pollfd){.fd = d->w[i].fd, .events = POLLIN | POLLRDHUP};
		p[n] = (struct pollfd){.fd = d->lfd, .events = POLLIN};
		p[n + 1] = (struct pollfd){.fd = d->wake, .events = POLLIN};
		if (poll(p, (nfds_t)n + 2, 100) < 0 && errno != EINTR)
			break;
		if (p[n + 1].revents)
			break;
		/* in arrival order (admit.c evicts by arrival): entry i of the poll set is now at
		 * i - gone in the array, `gone` being how many before it have left */
		for (int i = 0, gone = 0; i < n; i++)
			if (p[i].revents)
				gone += look(d, i - gone, p[i].revents);
		double now = s4k_mono_s();
		while (d->n && now - d->w[0].since > ADMIT_HEAD_S) {
			int fd = d->w[0].fd;
			drop(d, 0);
			atomic_fetch_add(&d->timed_out, 1);
			finish(fd, "408 Request Timeout", "no request line in time");
		}
		if (p[n].revents & POLLIN)
			accept_all(d);
	}
	return NULL;
}

struct door *door_open(const struct sockaddr *addr, socklen_t len, char *err, size_t errlen)
{
	struct door *d = calloc(1, sizeof *d);
	if (!d) {
		s4k_seterr(err, errlen, "out of memory for the HTTP listener");
		return NULL;
	}
	d->wake = -1;
	d->lfd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (d->lfd < 0 || setsockopt(d->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    (addr->sa_family == AF_INET6 && setsockopt(d->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) ||
	    bind(d->lfd, addr, len) < 0 || listen(d->lfd, SOMAXCONN) < 0) {
		s4k_seterr(err, errlen, "%s", strerror(errno));
		door_free(d);
		return NULL;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getsockname(d->lfd, (struct sockaddr *)&ss, &sl) == 0)
		d->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							: ((struct sockaddr_in *)&ss)->sin_port);
	if ((d->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		s4k_seterr(err, errlen, "eventfd: %s", strerror(errno));
		door_free(d);
		return NULL;
	}
	return d;
}

int door_port(const struct door *d)
{
	return d->port;
}

int door_start(struct door *d, door_pass_fn pass, void *ud, char *err, size_t errlen)
{
	d->pass = pass;
	d->ud = ud;
	int e = pthread_create(&d->thread, NULL, run, d);
	if (e) {
		s4k_seterr(err, errlen, "cannot start the HTTP listener thread: %s", strerror(e));
		return -e;
	}
	d->started = 1;
	return 0;
}

void door_stats(struct door *d, struct door_stats *out)
{
	out->malformed = atomic_load(&d->malformed);
	out->timed_out = atomic_load(&d->timed_out);
	out->evicted = atomic_load(&d->evicted);
}

void door_shut(struct door *d)
{
	if (!d)
		return;
	if (d->started) {
		uint64_t one = 1;
		ssize_t r = write(d->wake, &one, sizeof one);
		(void)r;
		pthread_join(d->thread, NULL);
		d->started = 0;
	}
	for (int i = 0; i < d->n; i++)
		close(d->w[i].fd);
	d->n = 0;
	if (d->lfd >= 0)
		close(d->lfd);
	d->lfd = -1;
}

void door_free(struct door *d)
{
	if (!d)
		return;
	door_shut(d);
	if (d->wake >= 0)
		close(d->wake);
	free(d);
}
