/* door.h - the HTTP listening socket: accepts, and answers a request line that is not one.
 *
 *   struct door *d = door_open(&addr, len, err, sizeof err);     // bound and listening
 *   door_port(d);                                                 // the bound port (for port 0)
 *   door_start(d, pass, ud, err, sizeof err);                     // the accepting thread
 *   ... pass(ud, fd, peer, peer_len) hands each good connection on (MHD_add_connection) ...
 *   door_stats(d, &st);  door_shut(d);  door_free(d);             // stop accepting; free
 *
 * libmicrohttpd 0.9.75 closes a connection whose first line has no method followed by a space
 * ("GARBAGE", "GET", " GET / HTTP/1.1", binary bytes) without any answer, so the client cannot
 * tell a broken request from a dead server. The door accepts connections itself and looks at
 * (peeks: nothing is consumed) the first bytes of each: after any empty lines (RFC 9112 2.2), a
 * method (1-64 token characters) followed by a space passes the connection on, untouched; any
 * other byte there, a peer that stops sending before the space, or a method of more than 64
 * characters gets "400 Bad Request" with a JSON error and is closed. Everything after the
 * method (target, version, headers) is libmicrohttpd's to judge, as before. A connection that
 * sends no method within ADMIT_HEAD_S gets 408; more than DOOR_PENDING waiting connections
 * close the oldest. A well-formed client waits here one poll round (its request line is
 * usually in its first packet).
 */
#ifndef S4KWS_DAEMON_DOOR_H
#define S4KWS_DAEMON_DOOR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define DOOR_PENDING 256 /* connections still sending their method; beyond, the oldest is closed */
#define DOOR_METHOD_MAX 64

struct door_stats {
	uint64_t malformed;  /* answered 400: the first line did not start with a method and a space */
	uint64_t timed_out;  /* answered 408: no method within ADMIT_HEAD_S */
	uint64_t evicted;    /* closed to keep at most DOOR_PENDING waiting */
};

/* Hands an accepted connection on; owns fd from then on (closes it on failure). */
typedef void (*door_pass_fn)(void *ud, int fd, const struct sockaddr *peer, socklen_t peer_len);

struct door;

struct door *door_open(const struct sockaddr *addr, socklen_t len, char *err, size_t errlen);
int door_port(const struct door *d);
int door_start(struct door *d, door_pass_fn pass, void *ud, char *err, size_t errlen);
void door_stats(struct door *d, struct door_stats *out);
/* Stop accepting: the listening socket and every waiting connection are closed (stats stay). */
void door_shut(struct door *d);
/* door_shut, and free. */
void door_free(struct door *d);

/* The verdict on the first `n` bytes of a connection (exposed for tests): 1 pass on, 0 wait
 * for more, -1 malformed. `ended`: the peer will send nothing more. */
int door_judge(const unsigned char *b, size_t n, int ended);

#endif
