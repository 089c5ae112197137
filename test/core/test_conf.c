/* conf: defaults, the file, flags and their precedence, and every validation. */
#include "core/conf.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "core/log.h"
#include "support/test.h"

/* Write @p text to a fresh temporary file; returns its path (static per call site slot). */
static const char *write_tmp(char path[64], const char *text)
{
    int fd;
    size_t n = strlen(text);

    snprintf(path, 64, "/tmp/cim-conf-XXXXXX");
    fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(write(fd, text, n), (ssize_t)n);
    ASSERT_OK(close(fd));
    return path;
}

#define ASSERT_CONTAINS(hay, needle)                                                               \
    do {                                                                                           \
        if (strstr((hay), (needle)) == NULL)                                                       \
            TEST_FAIL_("\"%s\" does not contain \"%s\"", (hay), (needle));                         \
    } while (0)

/* conf_parse_args over a NULL-terminated list (argv[0] added). */
static int parse(conf_t *c, char *err, size_t errlen, const char **args)
{
    char *argv[32];
    int argc = 0;

    argv[argc++] = (char *)"cimd";
    for (; *args != NULL; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    return conf_parse_args(c, argc, argv, err, errlen);
}

TEST(conf_defaults)
{
    conf_t c;
    char host[64];
    int port = -1;

    memset(&c, 0xa5, sizeof(c));
    conf_defaults(&c);
    ASSERT_STREQ(c.listen, "127.0.0.1:7400");
    ASSERT_STREQ(c.data, "data");
    ASSERT_EQ(c.workers, 0);
    ASSERT_EQ(c.node_id, 0);
    ASSERT_EQ(c.heartbeat_s, 30);
    ASSERT_EQ(c.login_timeout_s, 10);
    ASSERT_EQ(c.max_body, 65536);
    ASSERT_EQ(c.max_msg_bytes, 16384);
    ASSERT_EQ(c.max_conns, 100000);
    ASSERT_EQ(c.max_conns_per_ip, 1000);
    ASSERT_EQ(c.send_rate, 100);
    ASSERT_EQ(c.send_burst, 200);
    ASSERT_EQ(c.durability, CONF_DURABILITY_SYNC);
    ASSERT_EQ(c.retention_days, 0);
    ASSERT_EQ(c.recall_window_s, 120);
    ASSERT_EQ(c.max_group_size, 2000);
    ASSERT_EQ(c.max_conn_queue_kb, 4096);
    ASSERT_EQ(c.max_queued_mb, 256);
    ASSERT_EQ(c.login_fail_max, 10);
    ASSERT_EQ(c.login_fail_window_s, 60);
    ASSERT_EQ(c.webhook_queue, 10000);
    ASSERT_EQ(c.webhook_queue_mb, 64);
    ASSERT_EQ(c.webhook_timeout_ms, 5000);
    ASSERT_EQ(c.webhook_retries, 5);
    ASSERT_EQ(c.single_session, false);
    ASSERT_EQ(c.log_level, LOG_LVL_INFO);
    ASSERT_EQ(c.log_format, LOG_FMT_TEXT);
    ASSERT_OK(conf_listen_split(&c, host, sizeof(host), &port));
    ASSERT_STREQ(host, "127.0.0.1");
    ASSERT_EQ(port, 7400);
    /* The defaults are consistent, and no arguments change nothing. */
    char err[256] = "";
    ASSERT_OK(conf_check(&c, err, sizeof(err)));
    const char *none[] = {NULL};
    ASSERT_OK(parse(&c, err, sizeof(err), none));
    ASSERT_EQ(c.heartbeat_s, 30);
}

TEST(conf_file_with_comments)
{
    char path[64], err[256] = "";
    conf_t c;

    write_tmp(path, "# cimd test config\n"
                    "\n"
                    "; another comment style\n"
                    "listen = 0.0.0.0:7500\n"
                    "data=/var/lib/cim\n"
                    "   workers = 4\n"
                    "\theartbeat_s   =   45   \n"
                    "durability = nosync ; inline comment\n"
                    "single_session = yes\n"
                    "log_level = debug\n"
                    "log_format = json\n"
                    "max_body = 32768\n"
                    "max_msg_bytes = 32000\n"
                    "node_id: 1023\n"
                    "recall_window_s = 0\n"
                    "workers = 6\n"); /* a later line wins */
    conf_defaults(&c);
    ASSERT_OK(conf_load(&c, path, err, sizeof(err)));
    ASSERT_STREQ(c.listen, "0.0.0.0:7500");
    ASSERT_STREQ(c.data, "/var/lib/cim");
    ASSERT_EQ(c.workers, 6);
    ASSERT_EQ(c.heartbeat_s, 45);
    ASSERT_EQ(c.durability, CONF_DURABILITY_NOSYNC);
    ASSERT_EQ(c.single_session, true);
    ASSERT_EQ(c.log_level, LOG_LVL_DEBUG);
    ASSERT_EQ(c.log_format, LOG_FMT_JSON);
    ASSERT_EQ(c.max_body, 32768);
    ASSERT_EQ(c.max_msg_bytes, 32000);
    ASSERT_EQ(c.node_id, 1023);
    ASSERT_EQ(c.recall_window_s, 0);
    ASSERT_EQ(c.login_timeout_s, 10); /* untouched */
    unlink(path);

    /* An empty file is fine. */
    write_tmp(path, "");
    ASSERT_OK(conf_load(&c, path, err, sizeof(err)));
    unlink(path);
}

TEST(conf_file_errors_name_the_line)
{
    char path[64], err[256];
    conf_t c;

    /* A bad value on line 3. */
    write_tmp(path, "# x\nworkers = 2\nheartbeat_s = 0\nlisten = 1.2.3.4:1\n");
    conf_defaults(&c);
    ASSERT_RC(conf_load(&c, path, err, sizeof(err)), RC_EINVAL);
    ASSERT_CONTAINS(err, path);
    ASSERT_CONTAINS(err, ":3:");
    ASSERT_CONTAINS(err, "heartbeat_s");
    ASSERT_CONTAINS(err, "'0'");
    ASSERT_CONTAINS(err, "1..86400");
    ASSERT_STREQ(c.listen, "127.0.0.1:7400"); /* the load stopped at line 3 */
    unlink(path);

    /* An unknown key on line 2. */
    write_tmp(path, "workers = 2\nworkerz = 3\n");
    ASSERT_RC(conf_load(&c, path, err, sizeof(err)), RC_EINVAL);
    ASSERT_CONTAINS(err, ":2:");
    ASSERT_CONTAINS(err, "unknown key 'workerz'");
    unlink(path);

    /* A line that is not key = value, after a long (but allowed) line. */
    char text[512];
    snprintf(text, sizeof(text), "data = /%0190d\n\nnonsense\nworkers = 1\n", 0);
    write_tmp(path, text);
    ASSERT_RC(conf_load(&c, path, err, sizeof(err)), RC_EINVAL);
    ASSERT_CONTAINS(err, ":3:");
    ASSERT_CONTAINS(err, "key = value");
    unlink(path);

    /* A syntax error after a bad value: the first one is reported. */
    write_tmp(path, "workers = 999\nnonsense\n");
    ASSERT_RC(conf_load(&c, path, err, sizeof(err)), RC_EINVAL);
    ASSERT_CONTAINS(err, ":1:");
    ASSERT_CONTAINS(err, "workers");
    unlink(path);

    /* A line too long for the parser is refused, not cut in two. */
    snprintf(text, sizeof(text), "data = /%0250d\nworkers = 1\n", 0);
    write_tmp(path, text);
    ASSERT_RC(conf_load(&c, path, err, sizeof(err)), RC_EINVAL);
    ASSERT_CONTAINS(err, ":1:");
    ASSERT_CONTAINS(err, "longer");
    unlink(path);

    /* Sections are not part of the format, even empty ones. */
    write_tmp(path, "workers = 1\n[server]\n");
    ASSERT_RC(conf_load(&c, path, err, sizeof(err)), RC_EINVAL);
    ASSERT_CONTAINS(err, ":2:");
    ASSERT_CONTAINS(err, "section");
    unlink(path);

    /* 'config' inside a file. */
    write_tmp(path, "config = other.conf\n");
    ASSERT_RC(conf_load(&c, path, err, sizeof(err)), RC_EINVAL);
    ASSERT_CONTAINS(err, "config");
    unlink(path);

    /* The file alone must be consistent. */
    write_tmp(path, "max_body = 4096\n");
    ASSERT_RC(conf_load(&c, path, err, sizeof(err)), RC_EINVAL);
    ASSERT_CONTAINS(err, "max_msg_bytes");
    ASSERT_CONTAINS(err, "max_body");
    unlink(path);
}

TEST(conf_missing_file)
{
    char err[256];
    conf_t c;

    conf_defaults(&c);
    ASSERT_RC(conf_load(&c, "/nonexistent/cim.conf", err, sizeof(err)), -ENOENT);
    ASSERT_CONTAINS(err, "/nonexistent/cim.conf");
    const char *args[] = {"--workers", "2", "--config", "/nonexistent/cim.conf", NULL};
    ASSERT_RC(parse(&c, err, sizeof(err), args), -ENOENT);
    ASSERT_CONTAINS(err, "/nonexistent/cim.conf");
}

TEST(conf_flags_override_file)
{
    char path[64], err[256] = "";
    conf_t c;

    write_tmp(path, "workers = 2\nheartbeat_s = 10\nlisten = 10.0.0.1:1000\n");
    /* --config last on the line: still read first, so the flags win. */
    const char *after[] = {"--workers", "8", "--data", "/tmp/d", "--config", path, NULL};
    conf_defaults(&c);
    ASSERT_OK(parse(&c, err, sizeof(err), after));
    ASSERT_EQ(c.workers, 8);
    ASSERT_EQ(c.heartbeat_s, 10);
    ASSERT_STREQ(c.listen, "10.0.0.1:1000");
    ASSERT_STREQ(c.data, "/tmp/d");
    /* --config first. */
    const char *before[] = {"--config", path, "--workers", "8", NULL};
    conf_defaults(&c);
    ASSERT_OK(parse(&c, err, sizeof(err), before));
    ASSERT_EQ(c.workers, 8);
    ASSERT_EQ(c.heartbeat_s, 10);
    /* A repeated flag: the last one wins. */
    const char *twice[] = {"--workers", "3", "--config", path, "--workers", "5", NULL};
    conf_defaults(&c);
    ASSERT_OK(parse(&c, err, sizeof(err), twice));
    ASSERT_EQ(c.workers, 5);
    unlink(path);
}

TEST(conf_key_equals_value)
{
    char path[64], err[256] = "";
    conf_t c;

    write_tmp(path, "send_rate = 7\n");
    const char *args[] = {
        "--listen=[::1]:0", "--durability=nosync", "--workers=3", "--single_session=1",
        "--data=/a=b",      "--config=",           NULL};
    conf_defaults(&c);
    /* "--config=" with an empty name cannot be opened. */
    ASSERT_TRUE(parse(&c, err, sizeof(err), args) < 0);
    char cfg[80];
    snprintf(cfg, sizeof(cfg), "--config=%s", path);
    const char *args2[] = {"--listen=[::1]:0",
                           "--durability=nosync",
                           "--workers=3",
                           "--single_session=1",
                           "--data=/a=b",
                           cfg,
                           NULL};
    conf_defaults(&c);
    ASSERT_OK(parse(&c, err, sizeof(err), args2));
    ASSERT_STREQ(c.listen, "[::1]:0");
    ASSERT_EQ(c.durability, CONF_DURABILITY_NOSYNC);
    ASSERT_EQ(c.workers, 3);
    ASSERT_EQ(c.single_session, true);
    ASSERT_STREQ(c.data, "/a=b"); /* only the first '=' splits */
    ASSERT_EQ(c.send_rate, 7);
    char host[64];
    int port = -1;
    ASSERT_OK(conf_listen_split(&c, host, sizeof(host), &port));
    ASSERT_STREQ(host, "::1");
    ASSERT_EQ(port, 0);
    unlink(path);
}

TEST(conf_unknown_and_malformed_args)
{
    char err[256];
    conf_t c;

    conf_defaults(&c);
    ASSERT_RC(conf_set(&c, "no_such_key", "1", err, sizeof(err)), RC_EINVAL);
    ASSERT_CONTAINS(err, "no_such_key");

    const char *unknown[] = {"--workers", "2", "--frobnicate", "1", NULL};
    ASSERT_RC(parse(&c, err, sizeof(err), unknown), RC_EINVAL);
    ASSERT_CONTAINS(err, "--frobnicate");
    const char *unknown_eq[] = {"--frob=1", NULL};
    ASSERT_RC(parse(&c, err, sizeof(err), unknown_eq), RC_EINVAL);
    ASSERT_CONTAINS(err, "--frob");
    const char *help[] = {"--help", NULL};
    ASSERT_RC(parse(&c, err, sizeof(err), help), RC_EINVAL);
    ASSERT_CONTAINS(err, "--help");
    const char *shortf[] = {"-w", "2", NULL};
    ASSERT_RC(parse(&c, err, sizeof(err), shortf), RC_EINVAL);
    ASSERT_CONTAINS(err, "-w");
    const char *positional[] = {"--workers", "2", "stray", NULL};
    ASSERT_RC(parse(&c, err, sizeof(err), positional), RC_EINVAL);
    ASSERT_CONTAINS(err, "stray");
    const char *missing[] = {"--workers", NULL};
    ASSERT_RC(parse(&c, err, sizeof(err), missing), RC_EINVAL);
    ASSERT_CONTAINS(err, "workers");
    const char *missing_cfg[] = {"--config", NULL};
    ASSERT_RC(parse(&c, err, sizeof(err), missing_cfg), RC_EINVAL);
    ASSERT_CONTAINS(err, "config");
    const char *bad[] = {"--data", "/x", "--heartbeat_s", "abc", NULL};
    ASSERT_RC(parse(&c, err, sizeof(err), bad), RC_EINVAL);
    ASSERT_STREQ(err, "bad value 'abc' for heartbeat_s: expected an integer 1..86400");
    const char *dashdash[] = {"--", NULL};
    ASSERT_RC(parse(&c, err, sizeof(err), dashdash), RC_EINVAL);
}

typedef struct kv {
    const char *key, *value;
} kv_t;

TEST(conf_bad_values)
{
    static const kv_t bad[] = {
        {"durability", "fsync"},
        {"durability", "SYNC"},
        {"durability", ""},
        {"single_session", "maybe"},
        {"single_session", "2"},
        {"log_level", "verbose"},
        {"log_level", ""},
        {"log_format", "JSON"},
        {"log_format", "syslog"},
        {"log_format", ""},
        {"listen", "7400"},
        {"listen", "host:"},
        {"listen", ":7400"},
        {"listen", "host:65536"},
        {"listen", "host:-1"},
        {"listen", "host:74x"},
        {"listen", "[::1:7400"},
        {"data", ""},
        {"workers", "257"},
        {"workers", "-1"},
        {"workers", "+1"},
        {"workers", " 1"},
        {"workers", "1 "},
        {"workers", "0x10"},
        {"workers", "1.5"},
        {"workers", ""},
        {"workers", "99999999999999999999999"},
        {"node_id", "1024"},
        {"heartbeat_s", "0"},
        {"heartbeat_s", "86401"},
        {"login_timeout_s", "0"},
        {"login_timeout_s", "3601"},
        {"max_body", "1023"},
        {"max_body", "65537"},
        {"max_msg_bytes", "0"},
        {"max_msg_bytes", "65001"},
        {"max_conns", "0"},
        {"max_conns", "4294967296"},
        {"max_conns_per_ip", "0"},
        {"send_rate", "0"},
        {"send_burst", "0"},
        {"retention_days", "36501"},
        {"recall_window_s", "2592001"},
        {"max_group_size", "1"},
        {"max_group_size", "100001"},
        {"webhook_queue", "0"},
        {"webhook_queue_mb", "0"},
        {"webhook_timeout_ms", "99"},
        {"webhook_retries", "0"},
        {"webhook_retries", "101"},
    };
    static const kv_t good[] = {
        {"durability", "sync"},
        {"durability", "nosync"},
        {"single_session", "true"},
        {"single_session", "false"},
        {"single_session", "yes"},
        {"single_session", "no"},
        {"single_session", "0"},
        {"log_level", "error"},
        {"log_level", "warn"},
        {"log_level", "info"},
        {"log_format", "json"},
        {"log_format", "text"},
        {"listen", "localhost:65535"},
        {"listen", "[fe80::1]:1"},
        {"workers", "0"},
        {"workers", "256"},
        {"node_id", "0"},
        {"node_id", "1023"},
        {"heartbeat_s", "1"},
        {"heartbeat_s", "86400"},
        {"login_timeout_s", "1"},
        {"login_timeout_s", "3600"},
        {"max_body", "1024"},
        {"max_body", "65536"},
        {"max_msg_bytes", "1"},
        {"max_msg_bytes", "65000"},
        {"max_conns", "1"},
        {"max_conns", "4294967295"},
        {"max_conns_per_ip", "1"},
        {"send_rate", "1"},
        {"send_burst", "1"},
        {"retention_days", "0"},
        {"retention_days", "36500"},
        {"recall_window_s", "0"},
        {"recall_window_s", "2592000"},
        {"max_group_size", "2"},
        {"max_group_size", "100000"},
        {"webhook_queue", "1"},
        {"webhook_queue_mb", "65536"},
        {"webhook_timeout_ms", "100"},
        {"webhook_retries", "1"},
        {"webhook_retries", "100"},
        {"workers", "007"},
    };
    char err[256];
    conf_t c, before;

    conf_defaults(&c);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[128];
        memcpy(&before, &c, sizeof(c));
        err[0] = '\0';
        if (conf_set(&c, bad[i].key, bad[i].value, err, sizeof(err)) != RC_EINVAL)
            TEST_FAIL_("%s = '%s' was accepted", bad[i].key, bad[i].value);
        snprintf(want, sizeof(want), "'%s' for %s: expected", bad[i].value, bad[i].key);
        ASSERT_CONTAINS(err, want);
        ASSERT_TRUE(strchr(err, '\n') == NULL); /* one line */
        ASSERT_MEMEQ(&c, &before, sizeof(c));   /* unchanged */
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (conf_set(&c, good[i].key, good[i].value, err, sizeof(err)) != 0)
            TEST_FAIL_("%s = '%s' refused: %s", good[i].key, good[i].value, err);
    ASSERT_EQ(c.workers, 7);

    /* A huge value is shown shortened, still on one line. */
    char huge[2048];
    memset(huge, '9', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    ASSERT_RC(conf_set(&c, "workers", huge, err, sizeof(err)), RC_EINVAL);
    ASSERT_CONTAINS(err, "workers");
    ASSERT_RC(conf_set(&c, "data", huge, err, sizeof(err)), RC_EINVAL); /* over 1023 bytes */
}

TEST(conf_msg_bytes_fit_body)
{
    char err[256];
    conf_t c;

    /* The cross-key rule holds whatever the order of the flags. */
    const char *a[] = {"--max_body", "8192", "--max_msg_bytes", "4096", NULL};
    const char *b[] = {"--max_msg_bytes", "4096", "--max_body", "8192", NULL};
    conf_defaults(&c);
    ASSERT_OK(parse(&c, err, sizeof(err), a));
    conf_defaults(&c);
    ASSERT_OK(parse(&c, err, sizeof(err), b));
    ASSERT_EQ(c.max_body, 8192);
    ASSERT_EQ(c.max_msg_bytes, 4096);
    /* Exactly max_body - CONF_MSG_ROOM fits; one more does not. */
    const char *edge[] = {"--max_body", "8192", "--max_msg_bytes", "7680", NULL};
    conf_defaults(&c);
    ASSERT_OK(parse(&c, err, sizeof(err), edge));
    ASSERT_EQ(8192 - CONF_MSG_ROOM, 7680);
    const char *over[] = {"--max_body", "8192", "--max_msg_bytes", "7681", NULL};
    conf_defaults(&c);
    ASSERT_RC(parse(&c, err, sizeof(err), over), RC_EINVAL);
    ASSERT_CONTAINS(err, "max_msg_bytes 7681");
    ASSERT_CONTAINS(err, "max_body 8192");
    /* Lowering max_body alone under the default max_msg_bytes is refused. */
    const char *low[] = {"--max_body", "8192", NULL};
    conf_defaults(&c);
    ASSERT_RC(parse(&c, err, sizeof(err), low), RC_EINVAL);
    ASSERT_CONTAINS(err, "max_msg_bytes");
    /* The largest values fit together. */
    const char *max[] = {"--max_body", "65536", "--max_msg_bytes", "65000", NULL};
    conf_defaults(&c);
    ASSERT_OK(parse(&c, err, sizeof(err), max));
}

TEST(conf_output_caps_fit)
{
    char err[256];
    conf_t c;

    /* A connection must hold two frames of max_body: 2 * (65536 + 24) bytes = 129 KiB. */
    const char *ok[] = {"--max_conn_queue_kb", "129", NULL};
    conf_defaults(&c);
    ASSERT_OK(parse(&c, err, sizeof(err), ok));
    const char *low[] = {"--max_conn_queue_kb", "128", NULL};
    conf_defaults(&c);
    ASSERT_RC(parse(&c, err, sizeof(err), low), RC_EINVAL);
    ASSERT_CONTAINS(err, "max_conn_queue_kb 128");
    ASSERT_CONTAINS(err, "at least 129");
    /* smaller frames allow a smaller cap */
    const char *small[] = {"--max_body", "8192", "--max_msg_bytes", "4096",
                           "--max_conn_queue_kb", "17", NULL};
    conf_defaults(&c);
    ASSERT_OK(parse(&c, err, sizeof(err), small));
    /* the server-wide budget holds at least one connection's cap */
    const char *budget[] = {"--max_queued_mb", "1", "--max_conn_queue_kb", "2048", NULL};
    conf_defaults(&c);
    ASSERT_RC(parse(&c, err, sizeof(err), budget), RC_EINVAL);
    ASSERT_CONTAINS(err, "max_queued_mb 1");
    const char *zero[] = {"--max_queued_mb", "0", NULL};
    conf_defaults(&c);
    ASSERT_RC(parse(&c, err, sizeof(err), zero), RC_EINVAL);
    /* login throttling: 0 turns it off; the window is at least a second */
    const char *off[] = {"--login_fail_max", "0", NULL};
    conf_defaults(&c);
    ASSERT_OK(parse(&c, err, sizeof(err), off));
    ASSERT_EQ(c.login_fail_max, 0);
    const char *nowin[] = {"--login_fail_window_s", "0", NULL};
    conf_defaults(&c);
    ASSERT_RC(parse(&c, err, sizeof(err), nowin), RC_EINVAL);
    /* the dedup window is never under the protocol's 24 hours */
    const char *short_dedup[] = {"--dedup_window_h", "23", NULL};
    conf_defaults(&c);
    ASSERT_RC(parse(&c, err, sizeof(err), short_dedup), RC_EINVAL);
    ASSERT_CONTAINS(err, "dedup_window_h");
    /* commit pacing: 0 turns it off, 100 ms at most */
    const char *nopace[] = {"--commit_pace_ms", "0", NULL};
    conf_defaults(&c);
    ASSERT_EQ(c.commit_pace_ms, 1);
    ASSERT_OK(parse(&c, err, sizeof(err), nopace));
    ASSERT_EQ(c.commit_pace_ms, 0);
    const char *longpace[] = {"--commit_pace_ms", "101", NULL};
    conf_defaults(&c);
    ASSERT_RC(parse(&c, err, sizeof(err), longpace), RC_EINVAL);
    ASSERT_CONTAINS(err, "commit_pace_ms");
    const char *week[] = {"--dedup_window_h", "168", NULL};
    conf_defaults(&c);
    ASSERT_OK(parse(&c, err, sizeof(err), week));
    ASSERT_EQ(c.dedup_window_h, 168);
}

TEST(conf_listen_split)
{
    conf_t c;
    char host[8], err[256];
    int port = -1;

    conf_defaults(&c);
    ASSERT_OK(conf_set(&c, "listen", "a.b:80", err, sizeof(err)));
    ASSERT_OK(conf_listen_split(&c, host, sizeof(host), &port));
    ASSERT_STREQ(host, "a.b");
    ASSERT_EQ(port, 80);
    /* A host that does not fit the caller's buffer. */
    ASSERT_OK(conf_set(&c, "listen", "longhostname:80", err, sizeof(err)));
    ASSERT_RC(conf_listen_split(&c, host, sizeof(host), &port), RC_EINVAL);
}

/* conf_usage's text, NUL-terminated, into @p buf. */
static void read_usage(char *buf, size_t len)
{
    char path[] = "/tmp/cim-usage-XXXXXX";
    int fd = mkstemp(path);
    ssize_t n;

    ASSERT_TRUE(fd >= 0);
    conf_usage(fd);
    ASSERT_EQ(lseek(fd, 0, SEEK_SET), 0);
    n = read(fd, buf, len - 1);
    ASSERT_TRUE(n > 0);
    buf[n] = '\0';
    close(fd);
    unlink(path);
}

TEST(conf_usage)
{
    char buf[8192];

    read_usage(buf, sizeof(buf));
    static const char *const keys[] = {
        "--config",           "--listen",          "--data",           "--workers",
        "--node_id",          "--heartbeat_s",     "--max_body",       "--max_msg_bytes",
        "--max_conns_per_ip", "--send_rate",       "--send_burst",     "--durability",
        "--retention_days",   "--recall_window_s", "--max_group_size", "--single_session",
        "--log_level",        "--login_timeout_s", "--max_conns",     "--log_format"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        ASSERT_CONTAINS(buf, keys[i]);
    ASSERT_CONTAINS(buf, "127.0.0.1:7400");
    ASSERT_CONTAINS(buf, "16384");
    ASSERT_CONTAINS(buf, "sync");
}

/* The commented example config (data/cimd.conf, installed as cimd.conf.example) names
 * every key of the usage table, each as "# key = default": uncommented, it sets every key
 * to exactly its default. */
TEST(conf_example_has_every_key_at_its_default)
{
    char usage[8192], line[512], err[256], seen[4096] = " ";
    int nkeys = 0, nlines = 0;
    conf_t c, d;
    FILE *f;

    read_usage(usage, sizeof(usage));

    conf_defaults(&c);
    conf_defaults(&d);
    f = fopen(CIM_SRC_DIR "/data/cimd.conf", "r");
    ASSERT_NOT_NULL(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        char key[64], value[256] = "", *hash;
        int eq = 0, got = sscanf(line, "# %63[a-z_] =%n", key, &eq);
        if (got != 1 || eq == 0)
            continue; /* not a "# key = ..." line */
        got = sscanf(line + eq, " %255[^\n]", value) == 1 ? 2 : 1;
        if (got == 1 || value[0] == '#')
            value[0] = '\0'; /* "# key =" : an empty default */
        if ((hash = strstr(value, " #")) != NULL) /* a note after the value */
            *hash = '\0';
        value[strcspn(value, " ")] = '\0';
        if (conf_set(&c, key, value, err, sizeof(err)) != 0)
            TEST_FAIL_("data/cimd.conf: '%s = %s': %s", key, value, err);
        ASSERT_TRUE(strlen(seen) + strlen(key) + 2 < sizeof(seen));
        strcat(strcat(seen, key), " ");
        nlines++;
    }
    fclose(f);
    ASSERT_MEMEQ(&c, &d, sizeof(c)); /* every value shown is the default */
    /* Every flag of the usage table but --config has its line. */
    for (char *p = usage; (p = strstr(p, "\n  --")) != NULL; p++) {
        char key[64], want[70];
        ASSERT_EQ(sscanf(p + 5, "%63[a-z_]", key), 1);
        if (strcmp(key, "config") == 0)
            continue;
        snprintf(want, sizeof(want), " %s ", key);
        if (strstr(seen, want) == NULL)
            TEST_FAIL_("data/cimd.conf has no '# %s = ...' line", key);
        nkeys++;
    }
    ASSERT_TRUE(nkeys >= 24); /* what there was when this test was written */
    ASSERT_EQ(nlines, nkeys); /* and no key twice */
}

/* The example with every key line uncommented, as a user would, loads and gives the
 * defaults: nothing after a value spoils it (inih reads a '#' there as part of it). */
TEST(conf_example_uncommented_loads)
{
    char line[512], err[256], path[] = "/tmp/cimtest-conf-XXXXXX";
    conf_t c, d;
    FILE *in, *out;
    int fd, n = 0;

    ASSERT_NOT_NULL(in = fopen(CIM_SRC_DIR "/data/cimd.conf", "r"));
    ASSERT_TRUE((fd = mkstemp(path)) >= 0);
    ASSERT_NOT_NULL(out = fdopen(fd, "w"));
    while (fgets(line, sizeof(line), in) != NULL) {
        char key[64];
        int eq = 0;
        if (sscanf(line, "# %63[a-z_] =%n", key, &eq) == 1 && eq > 0) {
            fputs(line + 2, out);
            n++;
        }
    }
    fclose(in);
    ASSERT_OK(fclose(out));
    ASSERT_TRUE(n > 30);
    conf_defaults(&c);
    conf_defaults(&d);
    if (conf_load(&c, path, err, sizeof(err)) != 0)
        TEST_FAIL_("data/cimd.conf uncommented: %s", err);
    unlink(path);
    ASSERT_MEMEQ(&c, &d, sizeof(c));
}

/* The scale-out keys: each value's form, and the rules between them and node_id. */
TEST(conf_cluster)
{
    char err[256];
    conf_t c;

    conf_defaults(&c);
    ASSERT_STREQ(c.cluster_url, "");
    ASSERT_STREQ(c.cluster_name, "cim");
    ASSERT_EQ(c.ncluster_nodes, 0);

    const char *ok[] = {"--node_id", "2", "--cluster_url", "nats://127.0.0.1:4222",
                        "--cluster_nodes", "1, 2,3", "--cluster_name", "prod-eu_1", NULL};
    ASSERT_OK(parse(&c, err, sizeof(err), ok));
    ASSERT_STREQ(c.cluster_url, "nats://127.0.0.1:4222");
    ASSERT_STREQ(c.cluster_name, "prod-eu_1");
    ASSERT_EQ(c.ncluster_nodes, 3);
    ASSERT_EQ(c.cluster_nodes[0], 1);
    ASSERT_EQ(c.cluster_nodes[1], 2);
    ASSERT_EQ(c.cluster_nodes[2], 3);

    /* URLs: a list, credentials, IPv6, TLS */
    static const char *const urls[] = {
        "nats://a:4222,nats://b:4222", "nats://u:p@h:1", "tls://h", "nats://[::1]:4222",
        "nats://tok@10.0.0.1", ""};
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
        if (conf_set(&c, "cluster_url", urls[i], err, sizeof(err)) != 0)
            TEST_FAIL_("cluster_url '%s' refused: %s", urls[i], err);
    static const char *const bad_urls[] = {
        "127.0.0.1:4222", "http://h:80", "nats://", "nats://h:0", "nats://h:99999",
        "nats://h:42x", "nats://h/path", "nats://h 1", "nats://a,", ",nats://a", "nats://[::1",
        "nats://[]:1"};
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        if (conf_set(&c, "cluster_url", bad_urls[i], err, sizeof(err)) != RC_EINVAL)
            TEST_FAIL_("cluster_url '%s' accepted", bad_urls[i]);
        ASSERT_CONTAINS(err, "cluster_url");
        ASSERT_CONTAINS(err, "nats://HOST");
    }
    /* a password in a bad URL is not repeated in the error */
    ASSERT_RC(conf_set(&c, "cluster_url", "nats://u:s3cret@h:bad", err, sizeof(err)), RC_EINVAL);
    ASSERT_TRUE(strstr(err, "s3cret") == NULL);

    /* names: one subject token */
    static const char *const bad_names[] = {"", "a.b", "a*", ">", "a b", "é",
                                            "abcdefghijklmnopqrstuvwxyz0123456"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        if (conf_set(&c, "cluster_name", bad_names[i], err, sizeof(err)) != RC_EINVAL)
            TEST_FAIL_("cluster_name '%s' accepted", bad_names[i]);
        ASSERT_CONTAINS(err, "cluster_name");
    }
    ASSERT_OK(conf_set(&c, "cluster_name", "abcdefghijklmnopqrstuvwxyz012345", err, sizeof(err)));

    /* node lists */
    static const char *const bad_nodes[] = {"1,,2", "1,", ",1", "1;2", "1 2", "-1", "1024",
                                            "a", "1,2,1"};
    for (size_t i = 0; i < sizeof(bad_nodes) / sizeof(bad_nodes[0]); i++) {
        if (conf_set(&c, "cluster_nodes", bad_nodes[i], err, sizeof(err)) != RC_EINVAL)
            TEST_FAIL_("cluster_nodes '%s' accepted", bad_nodes[i]);
        ASSERT_CONTAINS(err, "cluster_nodes");
    }
    ASSERT_RC(conf_set(&c, "cluster_nodes", "7,8,7", err, sizeof(err)), RC_EINVAL);
    ASSERT_CONTAINS(err, "node id 7 is listed twice");
    char many[512] = "";
    for (int i = 0; i <= CONF_CLUSTER_MAX; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s%d", i ? "," : "", i);
    ASSERT_RC(conf_set(&c, "cluster_nodes", many, err, sizeof(err)), RC_EINVAL);
    ASSERT_CONTAINS(err, "more than");
    many[strlen(many) - 3] = '\0'; /* drop ",64": CONF_CLUSTER_MAX ids */
    ASSERT_OK(conf_set(&c, "cluster_nodes", many, err, sizeof(err)));
    ASSERT_EQ(c.ncluster_nodes, CONF_CLUSTER_MAX);
    ASSERT_OK(conf_set(&c, "cluster_nodes", "", err, sizeof(err)));
    ASSERT_EQ(c.ncluster_nodes, 0);

    /* the rules between the keys, whatever the order of the flags */
    const char *no_nodes[] = {"--cluster_url", "nats://h:1", NULL};
    conf_defaults(&c);
    ASSERT_RC(parse(&c, err, sizeof(err), no_nodes), RC_EINVAL);
    ASSERT_CONTAINS(err, "cluster_url is set but cluster_nodes is empty");
    const char *no_url[] = {"--cluster_nodes", "0,1", NULL};
    conf_defaults(&c);
    ASSERT_RC(parse(&c, err, sizeof(err), no_url), RC_EINVAL);
    ASSERT_CONTAINS(err, "cluster_nodes is set but cluster_url is empty");
    const char *not_me[] = {"--cluster_nodes", "1,2", "--cluster_url", "nats://h", NULL};
    conf_defaults(&c);
    ASSERT_RC(parse(&c, err, sizeof(err), not_me), RC_EINVAL);
    ASSERT_CONTAINS(err, "cluster_nodes does not list this node's node_id 0");
    const char *late_id[] = {"--cluster_nodes", "1,2", "--cluster_url", "nats://h",
                             "--node_id", "2", NULL};
    conf_defaults(&c);
    ASSERT_OK(parse(&c, err, sizeof(err), late_id));
}
