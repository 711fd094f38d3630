/* fuzz_conn.h - one fuzz input as one loopback TCP connection (fuzz_http, fuzz_wyoming): connect
 * to port, write the input whole, half-close, read until the server closes. Aborts when the
 * server stops accepting or neither answers nor closes for 20 s (a hang). The answer collects in
 * got (cap bytes); when it fills, full(got, len) says how many leading bytes to keep (the rest is
 * drained). Returns the bytes in got at the end.
 */
#ifndef S4KWS_TESTS_FUZZ_CONN_H
#define S4KWS_TESTS_FUZZ_CONN_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static inline size_t fuzz_exchange(int port, const uint8_t *data, size_t size, char *got, size_t cap,
				   size_t (*full)(const char *buf, size_t len))
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* closed with a reset (linger 0): tens of thousands of inputs a minute would otherwise use
	 * up the client's ports in TIME_WAIT and fail the connect, not the server */
	struct linger lg = {1, 0};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
		abort(); /* the server stopped accepting */
	size_t glen = 0, sent = 0;
	int wr_open = 1, waited = 0;
	for (;;) {
		struct pollfd pf = {fd, (short)(POLLIN | (sent < size ? POLLOUT : 0)), 0};
		if (poll(&pf, 1, 100) == 0) {
			if ((waited += 100) > 20000)
				abort(); /* neither answered nor closed in 20 s */
			continue;
		}
		if (pf.revents & POLLOUT && sent < size) {
			ssize_t k = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
			sent = k > 0 ? sent + (size_t)k : size; /* a closed connection takes no more */
		}
		if (sent >= size && wr_open) {
			shutdown(fd, SHUT_WR);
			wr_open = 0;
		}
		if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t k = recv(fd, got + glen, cap - 1 - glen, 0);
			if (k <= 0)
				break;
			glen += (size_t)k;
			if (glen == cap - 1)
				glen = full(got, glen);
		}
	}
	close(fd);
	return glen;
}

#endif
