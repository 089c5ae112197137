/* Tests for src/actors/webhook.c that need no server: the signature (docs/WEBHOOKS.md's
 * worked example) and the emit filter of a webhook that never started. */
#include <string.h>

#include "actors/webhook.h"
#include "support/test.h"

/* The worked example of docs/WEBHOOKS.md, "Verifying the signature": keep them equal. */
TEST(webhook_sign_worked_example)
{
    static const char body[] =
        "{\"id\":\"5f1c0e7a9b2d4c6e8f0a1b2c3d4e5f60\",\"event\":\"message.offline\","
        "\"app\":\"acme\",\"time_ms\":1767225600123,\"data\":{\"msg_id\":\"118302744186880000\","
        "\"from\":\"alice\",\"to\":\"bob\",\"recipient\":\"bob\",\"conversation\":{\"type\":"
        "\"DIRECT\",\"peer\":\"alice\"},\"type\":\"TEXT\",\"time_ms\":1767225600120}}";
    uint8_t secret[32];
    char sig[WEBHOOK_SIG_LEN + 1];

    for (int i = 0; i < 32; i++)
        secret[i] = (uint8_t)i; /* 000102...1f */
    ASSERT_EQ(sizeof(body) - 1, 273);
    ASSERT_OK(webhook_sign(secret, body, sizeof(body) - 1, sig));
    ASSERT_STREQ(sig, "sha256=5facd496b7867f3994a6542396fb2a6c40c102a888a39ebbb0212ac7e4c7d5f1");
    /* one byte more is another signature */
    ASSERT_OK(webhook_sign(secret, body, sizeof(body) - 2, sig));
    ASSERT_TRUE(
        strcmp(sig, "sha256=5facd496b7867f3994a6542396fb2a6c40c102a888a39ebbb0212ac7e4c7d5f1") !=
        0);
    ASSERT_EQ(strlen(sig), WEBHOOK_SIG_LEN);
}

/* Without a webhook actor (tools, or before start) nothing is wanted and emitting is a
 * no-op; the counters read as zero. */
TEST(webhook_null_wants_nothing)
{
    webhook_stats_t st;

    ASSERT_TRUE(!webhook_wants(NULL, "default", APPCONF_EV_ALL));
    webhook_emit_presence(NULL, "default", "bob", true, 1);
    webhook_emit_message(NULL, "default", "bob", NULL, 1);
    memset(&st, 0xff, sizeof(st));
    webhook_stats(NULL, &st);
    ASSERT_U64_EQ(st.queued + st.sent_total + st.dropped_queue_full_total, 0);
}
