/* cimdump's JSON values (src/cmd/cimdump/jv.c, on jansson): the rules of docs/CIMDUMP.md
 * that the hand-written writer it replaced kept, checked on the printed text. */
#include "cmd/cimdump/jv.c"
#include "cmd/cimdump/out.c"

#include "support/test.h"

/* @p v printed as jv_dump prints a document, inside [ ] (a scalar is no document). */
static void dump_one(json_t *v, char *out, size_t cap)
{
    json_t *arr = jv_arr();
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    ASSERT_NOT_NULL(f);
    jv_push(arr, v);
    ASSERT_OK(jv_dump(arr, f));
    ASSERT_OK(fclose(f));
    json_decref(arr);
    ASSERT_TRUE(len < cap);
    memcpy(out, buf, len + 1);
    free(buf);
}

#define EXPECT_JSON(v, want)                                                                       \
    do {                                                                                           \
        char got_[256];                                                                            \
        dump_one((v), got_, sizeof(got_));                                                         \
        ASSERT_STREQ(got_, "[" want "]\n");                                                        \
    } while (0)

TEST(cimdump_jv_text_escapes_and_replaces_bad_utf8)
{
    static const uint8_t bad[] = {'a', 0xff, 'b', 0xc3, 0xa9, 0xe2, 0x82, 0};
    static const uint8_t nul[] = {'x', 0, 'y'};

    jv_init();
    EXPECT_JSON(jv_str("quote \" back \\ tab\tnl\n caf\xc3\xa9"),
                "\"quote \\\" back \\\\ tab\\tnl\\n caf\xc3\xa9\"");
    /* each byte that is not UTF-8 is one U+FFFD; a cut sequence is two bytes, two U+FFFD */
    EXPECT_JSON(jv_text(bad, sizeof(bad) - 1), "\"a\xef\xbf\xbd"
                                               "b\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\"");
    EXPECT_JSON(jv_text(nul, sizeof(nul)), "\"x\\u0000y\"");
    EXPECT_JSON(jv_text("", 0), "\"\"");
    /* overlong forms and surrogates are not UTF-8 either */
    EXPECT_JSON(jv_text("\xc0\xaf", 2), "\"\xef\xbf\xbd\xef\xbf\xbd\"");
    EXPECT_JSON(jv_text("\xed\xa0\x80", 3), "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
}

TEST(cimdump_jv_ids_numbers_and_ratios)
{
    jv_init();
    /* 64-bit ids are strings, exact past 2^53; none is null */
    EXPECT_JSON(jv_id(117805230506115075ULL), "\"117805230506115075\"");
    EXPECT_JSON(jv_id(0), "\"0\"");
    EXPECT_JSON(jv_id_or_null(0), "null");
    EXPECT_JSON(jv_id_or_null(UINT64_MAX), "\"18446744073709551615\"");
    EXPECT_JSON(jv_u64(68719476736ULL), "68719476736");
    /* ratios: one decimal, in the short form; null without a denominator */
    EXPECT_JSON(jv_ratio(4096, 3), "1365.3");
    EXPECT_JSON(jv_ratio(4096, 2), "2048.0");
    EXPECT_JSON(jv_ratio(1, 0), "null");
    EXPECT_JSON(jv_fixed(100.0 * 28672 / 67108864, 4), "0.0427");
    EXPECT_JSON(jv_hex((const uint8_t *)"\x00\x01\xff\x80", 4), "\"0001ff80\"");
    EXPECT_JSON(jv_hex(NULL, 0), "\"\"");
}

TEST(cimdump_jv_members_keep_their_order)
{
    json_t *o;
    char *buf = NULL;
    size_t len = 0;
    FILE *f;

    jv_init();
    o = jv_obj();
    jv_set(o, "z", jv_u64(1));
    jv_set(o, "a", json_true());
    jv_set(o, "m", jv_arr());
    ASSERT_NOT_NULL(f = open_memstream(&buf, &len));
    ASSERT_OK(jv_dump(o, f));
    ASSERT_OK(fclose(f));
    ASSERT_STREQ(buf, "{\"z\":1,\"a\":true,\"m\":[]}\n");
    json_decref(o);
    free(buf);
}
