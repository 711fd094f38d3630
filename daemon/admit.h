/* admit.h - who keeps an HTTP connection: slow clients cannot hold the slots.
 *
 *   struct admit *a = admit_new(max_connections, err, sizeof err);   // a reaper thread
 *   libmicrohttpd: MHD_OPTION_NOTIFY_CONNECTION admit_notify, a;      (hard limit: admit_hard_limit)
 *   access handler: admit_phase(conn, ADMIT_BODY / ADMIT_ANSWER);
 *   request completed: admit_phase(conn, ADMIT_HEAD);                 // kept alive: a new head
 *   admit_stats(a, &st);  ...  (after MHD_stop_daemon) admit_free(a);
 *
 * libmicrohttpd closes idle connections, but a client that sends one header byte every few
 * seconds is never idle and never done, and 40 of them held every slot for a minute. So every
 * connection is tracked from accept to close, with the phase of its current request:
 *   - ADMIT_HEAD (sending the request line and headers) must end within ADMIT_HEAD_S of the
 *     connection's arrival (or of its previous answer, on a kept-alive connection), and
 *     ADMIT_BODY (sending a body) within ADMIT_BODY_S of the head; past that the connection is
 *     shut down. ADMIT_ANSWER (the answer is being computed or streamed, SSE included) has no
 *     deadline: the endpoints bound those themselves.
 *   - A new connection always gets in while one is still sending its head: at max_connections
 *     open, the one whose head started longest ago is shut down to make room (evicted); only
 *     when every open connection is being answered is the new one refused (shut down at once).
 *   - One address may hold at most ADMIT_PER_ADDRESS connections that are still sending their
 *     head; a new one from it evicts that address's oldest.
 * Shutting down is shutdown(2) of the socket, under the guard's lock, which the close
 * notification also takes before libmicrohttpd closes the descriptor, so a descriptor number
 * is never reused under us. Threads: notifications and phases from libmicrohttpd's threads,
 * deadlines from the guard's own thread (every 100 ms); all under one mutex.
 */
#ifndef S4KWS_DAEMON_ADMIT_H
#define S4KWS_DAEMON_ADMIT_H

#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#define ADMIT_HEAD_S 10.0       /* request line and headers, from arrival or the last answer */
#define ADMIT_BODY_S 120.0      /* a request body (10 MB at ~90 kB/s), from the end of the head */
#define ADMIT_PER_ADDRESS 16    /* connections one address may have in their head */
#define ADMIT_SPARE 64          /* libmicrohttpd's hard limit is max_connections + this: room for a
                                   burst of arrivals while the evicted ones are being closed */

enum admit_phase { ADMIT_HEAD, ADMIT_BODY, ADMIT_ANSWER };

struct admit_stats {
	unsigned open;              /* connections open now */
	uint64_t evicted;           /* shut down to make room for a new connection */
	uint64_t timed_out;         /* shut down for a head or body past its deadline */
	uint64_t refused;           /* new connections shut down because every slot was answering */
};

struct admit;

struct admit *admit_new(unsigned max_connections, char *err, size_t errlen);
/* For MHD_OPTION_CONNECTION_LIMIT: room for arrivals that admit_notify then sorts out. */
unsigned admit_hard_limit(unsigned max_connections);
/* MHD_OPTION_NOTIFY_CONNECTION's callback (cls: the struct admit). */
void admit_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
		  enum MHD_ConnectionNotificationCode code);
/* The connection's current request moved to phase p (any libmicrohttpd thread). */
void admit_phase(struct MHD_Connection *conn, enum admit_phase p);
void admit_stats(struct admit *a, struct admit_stats *out);
/* Stop the reaper and free; after the HTTP daemon has stopped (no connection left). */
void admit_free(struct admit *a);

#endif
