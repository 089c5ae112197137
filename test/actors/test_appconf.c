/* Tests for src/actors/appconf.c: an app's settings, their checks and their stored form. */
#include <string.h>

#include "actors/appconf.h"
#include "core/kv.h"
#include "support/test.h"

#define ASSERT_HAS(hay, needle)                                                                    \
    do {                                                                                           \
        if (strstr((hay), (needle)) == NULL)                                                       \
            TEST_FAIL_("\"%s\" does not contain \"%s\"", (hay), (needle));                         \
    } while (0)

TEST(appconf_defaults_store_nothing)
{
    uint8_t buf[KV_APP_SETTINGS_MAX];
    appconf_t c;

    memset(&c, 0xa5, sizeof(c));
    appconf_defaults(&c);
    ASSERT_STREQ(c.webhook_url, "");
    ASSERT_EQ(c.webhook_events, APPCONF_EV_MESSAGE_OFFLINE | APPCONF_EV_MESSAGE_TO_BOT);
    ASSERT_TRUE(!c.webhook_bodies);
    ASSERT_TRUE(!appconf_has_webhook(&c));
    ASSERT_EQ(appconf_encode(&c, buf, sizeof(buf)), 0); /* the 40-byte record */
    memset(&c, 0xa5, sizeof(c));
    appconf_decode(NULL, 0, &c);
    ASSERT_STREQ(c.webhook_url, "");
    ASSERT_EQ(c.webhook_events, APPCONF_EV_DEFAULT);
}

TEST(appconf_set_encode_decode_round_trip)
{
    uint8_t buf[KV_APP_SETTINGS_MAX];
    char text[3 * APPCONF_URL_MAX], err[256];
    appconf_t c, d;
    int n;

    appconf_defaults(&c);
    ASSERT_OK(
        appconf_set(&c, "webhook_url=https://push.example.com:8443/cim?k=1", err, sizeof(err)));
    ASSERT_OK(appconf_set(&c, "webhook_events= user.offline ,message.offline", err, sizeof(err)));
    ASSERT_OK(appconf_set(&c, "webhook_bodies=TRUE", err, sizeof(err)));
    ASSERT_TRUE(appconf_has_webhook(&c));
    ASSERT_EQ(c.webhook_events, APPCONF_EV_USER_OFFLINE | APPCONF_EV_MESSAGE_OFFLINE);
    n = appconf_encode(&c, buf, sizeof(buf));
    ASSERT_LT(0, n);
    ASSERT_TRUE((size_t)n == strlen("webhook_url=https://push.example.com:8443/cim?k=1\n"
                                    "webhook_events=message.offline,user.offline\n"
                                    "webhook_bodies=true\n"));
    ASSERT_TRUE(memcmp(buf,
                       "webhook_url=https://push.example.com:8443/cim?k=1\n"
                       "webhook_events=message.offline,user.offline\n"
                       "webhook_bodies=true\n",
                       (size_t)n) == 0);
    appconf_decode(buf, (size_t)n, &d);
    ASSERT_STREQ(d.webhook_url, c.webhook_url);
    ASSERT_EQ(d.webhook_events, c.webhook_events);
    ASSERT_TRUE(d.webhook_bodies);
    ASSERT_LT(0, appconf_format(&d, " ", text, sizeof(text)));
    ASSERT_STREQ(text, "webhook_url=https://push.example.com:8443/cim?k=1 "
                       "webhook_events=message.offline,user.offline webhook_bodies=true");
    /* too small a buffer is said, never cut */
    ASSERT_RC(appconf_encode(&c, buf, 10), RC_ETOOBIG);
    ASSERT_RC(appconf_format(&c, " ", text, 10), RC_ETOOBIG);
    /* no events at all is a setting of its own; an empty URL is none */
    ASSERT_OK(appconf_set(&c, "webhook_events=", err, sizeof(err)));
    ASSERT_EQ(c.webhook_events, 0);
    ASSERT_TRUE(!appconf_has_webhook(&c));
    ASSERT_OK(appconf_set(&c, "webhook_url=", err, sizeof(err)));
    ASSERT_STREQ(c.webhook_url, "");
}

/* A newer build's keys, and lines this one cannot read, are skipped; the rest applies. */
TEST(appconf_decode_skips_what_it_does_not_know)
{
    static const char stored[] = "webhook_colour=blue\n"
                                 "webhook_bodies=true\n"
                                 "webhook_events=message.offline,user.teleported\n"
                                 "no equals sign\n"
                                 "webhook_url=http://h/";
    appconf_t c;

    appconf_decode((const uint8_t *)stored, sizeof(stored) - 1, &c);
    ASSERT_TRUE(c.webhook_bodies);
    ASSERT_EQ(c.webhook_events, APPCONF_EV_DEFAULT); /* unreadable: left at its default */
    ASSERT_STREQ(c.webhook_url, "http://h/");        /* last line without '\n' */
}

TEST(appconf_bad_settings_say_why_and_change_nothing)
{
    static const struct {
        const char *setting, *why;
        int rc;
    } bad[] = {
        {"webhook_url", "expected KEY=VALUE", RC_EINVAL},
        {"webhook_url=ftp://h/x", "http:// or https://", RC_EINVAL},
        {"webhook_url=http://", "with a host", RC_EINVAL},
        {"webhook_url=not a url", "percent-encoded", RC_EINVAL},
        {"webhook_url=http://h/\n", "percent-encoded", RC_EINVAL},
        {"webhook_url=http://h/caf\xc3\xa9", "percent-encoded", RC_EINVAL},
        {"webhook_events=message.offline,bogus", "unknown event 'bogus' in webhook_events",
         RC_EINVAL},
        {"webhook_events=message.offline,", "empty event name", RC_EINVAL},
        {"webhook_events=,user.online", "empty event name", RC_EINVAL},
        {"webhook_bodies=maybe", "expected true or false", RC_EINVAL},
        {"webhook_bodies=", "expected true or false", RC_EINVAL},
        {"webhook=http://h/", "unknown setting 'webhook'", RC_ENOTFOUND},
        {"=x", "unknown setting ''", RC_ENOTFOUND},
    };
    char err[256], long_url[APPCONF_URL_MAX + 32];
    appconf_t c, before;

    appconf_defaults(&c);
    ASSERT_OK(appconf_set(&c, "webhook_url=http://keep.example/", err, sizeof(err)));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memcpy(&before, &c, sizeof(c));
        err[0] = '\0';
        if (appconf_set(&c, bad[i].setting, err, sizeof(err)) != bad[i].rc)
            TEST_FAIL_("'%s' was not refused with %d", bad[i].setting, bad[i].rc);
        ASSERT_HAS(err, bad[i].why);
        ASSERT_TRUE(strchr(err, '\n') == NULL);
        ASSERT_TRUE(memcmp(&c, &before, sizeof(c)) == 0);
    }
    snprintf(long_url, sizeof(long_url), "webhook_url=http://h/");
    memset(long_url + strlen(long_url), 'a', APPCONF_URL_MAX);
    long_url[sizeof(long_url) - 1] = '\0';
    ASSERT_RC(appconf_set(&c, long_url, err, sizeof(err)), RC_EINVAL);
    ASSERT_HAS(err, "longer than");
    ASSERT_STREQ(c.webhook_url, "http://keep.example/");
}

TEST(appconf_event_names)
{
    ASSERT_STREQ(appconf_event_name(APPCONF_EV_MESSAGE_OFFLINE), "message.offline");
    ASSERT_STREQ(appconf_event_name(APPCONF_EV_MESSAGE_TO_BOT), "message.to_bot");
    ASSERT_STREQ(appconf_event_name(APPCONF_EV_USER_ONLINE), "user.online");
    ASSERT_STREQ(appconf_event_name(APPCONF_EV_USER_OFFLINE), "user.offline");
    ASSERT_NULL(appconf_event_name(0));
    ASSERT_NULL(appconf_event_name(APPCONF_EV_USER));
}
