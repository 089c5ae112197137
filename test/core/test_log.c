/* log: the text and JSON line formats (log.h), written to a temporary file. */
#include "core/log.h"

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <unistd.h>

#include "support/test.h"

/* A log sink in a temporary file; lines() reads what was written since open_sink. */
typedef struct sink {
    char path[32];
    int fd;
    char buf[16384];
} sink_t;

static void open_sink(sink_t *s)
{
    snprintf(s->path, sizeof(s->path), "/tmp/cim-log-XXXXXX");
    s->fd = mkstemp(s->path);
    ASSERT_TRUE(s->fd >= 0);
    log_set_fd(s->fd);
    log_set_level(LOG_LVL_DEBUG);
}

static const char *contents(sink_t *s)
{
    ssize_t n = pread(s->fd, s->buf, sizeof(s->buf) - 1, 0);

    ASSERT_TRUE(n >= 0);
    s->buf[n] = '\0';
    return s->buf;
}

static void close_sink(sink_t *s)
{
    log_set_fd(2);
    close(s->fd);
    unlink(s->path);
}

static bool matches(const char *re, const char *s)
{
    regex_t r;
    bool ok;

    ASSERT_OK(regcomp(&r, re, REG_EXTENDED | REG_NOSUB));
    ok = regexec(&r, s, 0, NULL, 0) == 0;
    regfree(&r);
    return ok;
}

/* Parse line @p i (from 0) of the sink as one JSON object with exactly the five members. */
static json_t *json_line(sink_t *s, int i)
{
    const char *p = contents(s);
    json_error_t e;
    json_t *o;
    size_t len;

    for (; i > 0; i--) {
        p = strchr(p, '\n');
        ASSERT_NOT_NULL(p);
        p++;
    }
    len = strcspn(p, "\n");
    ASSERT_EQ(p[len], '\n'); /* every line ends with its newline */
    o = json_loadb(p, len, 0, &e);
    if (o == NULL)
        TEST_FAIL_("not JSON (%s): %.*s", e.text, (int)len, p);
    ASSERT_TRUE(json_is_object(o));
    ASSERT_EQ(json_object_size(o), 5);
    ASSERT_TRUE(matches("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$",
                        json_string_value(json_object_get(o, "time"))));
    ASSERT_NOT_NULL(json_string_value(json_object_get(o, "level")));
    ASSERT_NOT_NULL(json_string_value(json_object_get(o, "thread")));
    ASSERT_NOT_NULL(json_string_value(json_object_get(o, "event")));
    ASSERT_TRUE(json_is_object(json_object_get(o, "fields")));
    return o;
}

static const char *str(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    ASSERT_NOT_NULL(v);
    return v;
}

TEST(log_text_line)
{
    sink_t s;

    open_sink(&s);
    log_set_thread("w3");
    LOG_WARN("store: batch n=%d", 12);
    LOG_DEBUG("second");
    ASSERT_TRUE(matches("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z warn  \\[w3\\] "
                        "store: batch n=12\n"
                        "[0-9T:.Z-]{24} debug \\[w3\\] second\n$",
                        contents(&s)));
    close_sink(&s);
}

TEST(log_json_lines_and_fields)
{
    sink_t s;
    json_t *o, *f;

    open_sink(&s);
    log_use_json();
    log_set_thread("store");
    LOG_INFO("store: batch n=%d ms=%d, peer=%s who=\"a b\" neg=-3 big=%s x=1.5 set LimitNOFILE= "
             "n=7;",
             12, 4, "10.0.0.1:7400", "123456789012345678901");
    LOG_ERROR("plain \"quoted\" \\ back\tslash");
    LOG_RL(LOG_LVL_WARN, "limited k=%s", "v");

    o = json_line(&s, 0);
    ASSERT_STREQ(str(o, "level"), "info");
    ASSERT_STREQ(str(o, "thread"), "store");
    ASSERT_STREQ(str(o, "event"), "store: batch n=12 ms=4, peer=10.0.0.1:7400 who=\"a b\" neg=-3 "
                                  "big=123456789012345678901 x=1.5 set LimitNOFILE= n=7;");
    f = json_object_get(o, "fields");
    ASSERT_EQ(json_integer_value(json_object_get(f, "n")), 7); /* the last one wins */
    ASSERT_EQ(json_integer_value(json_object_get(f, "ms")), 4);  /* ',' is punctuation */
    ASSERT_STREQ(str(f, "peer"), "10.0.0.1:7400");
    ASSERT_STREQ(str(f, "who"), "a b");
    ASSERT_EQ(json_integer_value(json_object_get(f, "neg")), -3);
    ASSERT_STREQ(str(f, "big"), "123456789012345678901"); /* too long for a number */
    ASSERT_STREQ(str(f, "x"), "1.5");
    ASSERT_NULL(json_object_get(f, "LimitNOFILE"));
    ASSERT_EQ(json_object_size(f), 7);
    json_decref(o);

    o = json_line(&s, 1);
    ASSERT_STREQ(str(o, "level"), "error");
    ASSERT_STREQ(str(o, "event"), "plain \"quoted\" \\ back\tslash");
    ASSERT_EQ(json_object_size(json_object_get(o, "fields")), 0);
    json_decref(o);

    o = json_line(&s, 2);
    ASSERT_STREQ(str(o, "level"), "warn");
    ASSERT_STREQ(str(o, "event"), "limited k=v (0 similar suppressed)");
    ASSERT_STREQ(str(json_object_get(o, "fields"), "k"), "v");
    json_decref(o);
    close_sink(&s);
}

/* Whatever a message holds, a JSON line stays one valid line: bytes that are not UTF-8,
 * newlines, and a message that would not fit once escaped. */
TEST(log_json_hostile_messages)
{
    char ctl[1200];
    sink_t s;
    json_t *o;

    open_sink(&s);
    log_use_json();
    LOG_INFO("login refused for user=%s", "\xff\xfe\x80ok");
    memset(ctl, '\x01', sizeof(ctl) - 1);
    ctl[sizeof(ctl) - 1] = '\0';
    LOG_INFO("%s", ctl); /* 1023 bytes kept, each escaped to 6: over the line */
    LOG_INFO("two\nlines a=1");

    o = json_line(&s, 0);
    ASSERT_STREQ(str(o, "event"), "login refused for user=???ok");
    ASSERT_STREQ(str(json_object_get(o, "fields"), "user"), "???ok");
    json_decref(o);
    o = json_line(&s, 1);
    ASSERT_EQ(strlen(str(o, "event")), 255);
    json_decref(o);
    o = json_line(&s, 2);
    ASSERT_STREQ(str(o, "event"), "two\nlines a=1");
    json_decref(o);
    int lines = 0;
    for (const char *p = contents(&s); *p != '\0'; p++)
        lines += *p == '\n';
    ASSERT_EQ(lines, 3);
    close_sink(&s);
}
