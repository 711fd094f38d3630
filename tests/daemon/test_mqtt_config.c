/* test_mqtt_config.c - the settings mqtt_check() accepts and refuses (the broker URL, the topic
 * prefix, the CA file), without a broker: test_mqtt.sh covers the publishing itself.
 */
#include <errno.h>
#include <string.h>

#include "tests/check.h"
#include "daemon/log.h"
#include "daemon/mqtt.h"

static const char *const labels[] = {"yes", "no", "_silence_", "_unknown_"};

/* mqtt_check() of url and topic; err gets the sentence. */
static int check(const char *url, const char *topic, const char *ca, char *err)
{
	struct mqtt_config c = {.url = url, .password = "pw-secret", .ca_file = ca, .topic = topic,
				.discovery = 1, .queue = 10, .retry_max_s = 30, .labels = labels,
				.n_labels = 4, .channels = 2};
	err[0] = 0;
	return mqtt_check(&c, err, 256);
}

int main(void)
{
	log_set_level(LOGL_WARN);
	char err[256];
	static const char *const good[] = {"mqtt://broker.lan", "mqtts://broker.lan", "mqtt://u@127.0.0.1:1884",
					   "mqtt://host/", "mqtt://[::1]:1883", "mqtts://ha@[fe80::1]"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		CHECK(check(good[i], "", NULL, err) == 0, "%s: %s", good[i], err);
	static const char *const bad[][2] = {
		{"http://broker", "mqtt://"},        {"mqtt://u:pw@broker", "mqtt-password-file"},
		{"mqtt://", "no broker host"},       {"mqtt://host:0", "port"},
		{"mqtt://host:70000", "port"},       {"mqtt://host:12x", "port"},
		{"mqtt://host/a/b", "no place"},     {"mqtt://[::1", "']'"},
		{"mqtt://@host", "user name"},       {"broker.lan", "mqtt://"}};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK(check(bad[i][0], "", NULL, err) == -EINVAL && strstr(err, bad[i][1]), "%s: '%s'", bad[i][0],
		      err);
		CHECK(!strstr(err, "pw-secret") && !strstr(err, ":pw@"), "%s: the error shows a password: %s",
		      bad[i][0], err);
	}
	CHECK(check("mqtt://h", "home/+/kws", NULL, err) == -EINVAL && strstr(err, "mqtt-topic"), "%s", err);
	CHECK(check("mqtt://h", "home/#", NULL, err) == -EINVAL, "%s", err);
	CHECK(check("mqtt://h", "/home", NULL, err) == -EINVAL, "%s", err);
	CHECK(check("mqtt://h", "home/kitchen/", NULL, err) == 0, "%s", err);
	CHECK(check("mqtts://h", "", "/nonexistent/ca.pem", err) == -EINVAL && strstr(err, "mqtt-ca-file") &&
	      strstr(err, "/nonexistent/ca.pem"), "%s", err);
	return CHECK_DONE();
}
