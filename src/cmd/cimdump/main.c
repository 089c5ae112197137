/* cimdump: options, the command table, errors and the run (dump_int.h describes the
 * program and which file holds what). */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cmd/cimdump/dump_int.h"
#include "cmd/cimdump/jv.h"
#include "core/datadir.h"
#include "core/log.h"
#include "core/rc.h"
#include "core/version.h"

/* Print one error line: "cimdump: reason". */
void dump__fail(const char *fmt, ...)
{
    va_list ap;
    fputs("cimdump: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* The last line kv logged (its text after the "[thread] " tag), or "" — so that an error
 * stays one line yet says what LMDB or kv found. */
static void last_log(const dump_t *d, char *out, size_t cap)
{
    char buf[4096];
    ssize_t n;
    char *line, *tag;

    out[0] = '\0';
    if (d->logfd < 0 || (n = pread(d->logfd, buf, sizeof(buf) - 1, 0)) <= 0)
        return;
    buf[n] = '\0';
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    line = strrchr(buf, '\n');
    line = line != NULL ? line + 1 : buf;
    if ((tag = strstr(line, "] ")) != NULL)
        line = tag + 2;
    n = (ssize_t)strlen(line);
    if ((size_t)n >= cap)
        n = (ssize_t)cap - 1;
    memcpy(out, line, (size_t)n);
    out[n] = '\0';
}

/* Report a storage failure of @p what, with kv's own last word when it logged one. */
int dump__fail_rc(const dump_t *d, const char *what, int rc)
{
    char detail[512];

    last_log(d, detail, sizeof(detail));
    if (detail[0] != '\0' && rc == RC_ESTORE)
        dump__fail("%s: %s (%s)", what, rc_str(rc), detail);
    else
        dump__fail("%s: %s", what, rc_str(rc));
    return rc;
}

/* "unknown user 'x'", naming the app when it is not the default one. */
static int fail_user(const dump_t *d, const char *user)
{
    if (strcmp(d->app, DEFAULT_APP) == 0)
        dump__fail("unknown user '%s'", user);
    else
        dump__fail("unknown user '%s' in app '%s'", user, d->app);
    return RC_ENOTFOUND;
}

/* Parse a decimal u64 (digits only, no sign, no overflow). @return 0 or RC_EINVAL. */
int dump__parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (*s == '\0')
        return RC_EINVAL;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return RC_EINVAL;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

/* Check that the app exists. @return 0 or rc (reported). */
int dump__need_app(dump_t *d)
{
    uint8_t secret[32];
    int rc = kv_app_get(d->txn, d->app, secret);

    memset(secret, 0, sizeof(secret));
    if (rc == RC_ENOTFOUND) {
        dump__fail("unknown app '%s'", d->app);
        return rc;
    }
    return rc < 0 ? dump__fail_rc(d, "cannot read the app", rc) : 0;
}

/* Check a user id argument and that the user exists in the app. @return 0 or rc
 * (reported). */
int dump__need_user(dump_t *d, const char *user, uint64_t *created_ms)
{
    int rc;

    if ((rc = dump__need_app(d)) < 0)
        return rc;
    if (!kv_id_valid(user)) {
        dump__fail("invalid user id '%s' (1..%d characters of A-Z a-z 0-9 . _ @ -)", user,
                   KV_ID_MAX);
        return RC_EINVAL;
    }
    rc = kv_user_get(d->txn, d->app, user, created_ms);
    if (rc == RC_ENOTFOUND)
        return fail_user(d, user);
    if (rc < 0)
        return dump__fail_rc(d, "cannot read the user", rc);
    return 0;
}

/* ---- command line ------------------------------------------------------------------- */

static const cmd_t cmds[] = {
    {"stats", "", "counts and sizes per database, map use, oldest/newest message, readers", 0, true,
     false, dump__cmd_stats},
    {"apps", "", "the apps, with their user counts (secrets are never shown)", 0, true, false,
     dump__cmd_apps},
    {"users", "[--app A]", "an app's users, with their timeline lengths", 0, true, false,
     dump__cmd_users},
    {"user", "U [--app A]", "one user: devices and their cursors, timeline, conversations", 1, true,
     false, dump__cmd_user},
    {"timeline", "U [--app A] [--after ID] [--limit N]",
     "a page of a user's timeline, messages decoded", 1, true, true, dump__cmd_timeline},
    {"msg", "ID", "one message, decoded: from, to, type, time, body, flags", 1, true, false,
     dump__cmd_msg},
    {"groups", "[--app A]", "an app's groups", 0, true, false, dump__cmd_groups},
    {"group", "G [--app A]", "one group: owner, state and members", 1, true, false,
     dump__cmd_group},
    {"convs", "U [--app A]", "a user's conversations: unread counts and read cursors", 1, true,
     false, dump__cmd_convs},
    {"decode-id", "ID", "split a message id into time, node and sequence", 1, false, false,
     dump__cmd_decode_id},
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static const cmd_t *find_cmd(const char *name)
{
    for (size_t i = 0; i < NCMDS; i++)
        if (strcmp(cmds[i].name, name) == 0)
            return &cmds[i];
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: cimdump [--data DIR] [--app A] [--json] COMMAND [ARGS]\n"
               "       cimdump DIR COMMAND [ARGS]\n\n"
               "Inspect a cim data directory (default '" DEFAULT_DATA "') read-only; safe "
               "while cimd runs.\n\ncommands:\n");
    for (size_t i = 0; i < NCMDS; i++) {
        char syn[64];
        if (snprintf(syn, sizeof(syn), "%s %s", cmds[i].name, cmds[i].args) >= (int)sizeof(syn))
            syn[sizeof(syn) - 1] = '\0';
        fprintf(f, "  %-46s %s\n", syn, cmds[i].help);
    }
    fprintf(f,
            "\noptions:\n"
            "  --data DIR    the data directory (default '" DEFAULT_DATA "')\n"
            "  --app A       the app of users and groups (default \"" DEFAULT_APP "\")\n"
            "  --json        print one JSON document (fields: docs/CIMDUMP.md)\n"
            "  --after ID    timeline: entries after this message id (default 0)\n"
            "  --limit N     timeline: at most N entries (default %d, at most %d)\n"
            "  --help        this text\n"
            "  --version     print the version and exit\n",
            TL_LIMIT_DEFAULT, TL_LIMIT_MAX);
}

/* Check DIR before LMDB sees it: a read-only open of a directory without data.mdb would
 * still create lock.mdb there. A directory without identity.key is refused too, as by
 * cimctl (datadir.h: that is not a cim data directory). @return 0, or RC_ENOTFOUND /
 * RC_ETOOBIG (reported). */
static int check_dir(const char *dir)
{
    char why[256];
    int rc = datadir_check(dir, why, sizeof(why));

    if (rc == RC_ENOTFOUND)
        dump__fail("no cim data in %s: %s", dir, why);
    else if (rc < 0)
        dump__fail("data directory path too long");
    return rc;
}

enum { ARGS_HELP = 1, ARGS_VERSION = 2 };

/* The options and the command into @p d. @return 0, ARGS_HELP / ARGS_VERSION (--help,
 * --version: nothing else is checked), or RC_EINVAL (reported). */
static int parse_args(dump_t *d, int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},
        {"app", required_argument, NULL, 'a'},
        {"json", no_argument, NULL, 'j'},
        {"after", required_argument, NULL, 'A'},
        {"limit", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    bool data_opt = false, after = false;
    uint64_t v;
    int opt, npos;
    char **pos;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            return ARGS_HELP;
        case 'V':
            return ARGS_VERSION;
        case 'd':
            d->data = optarg;
            data_opt = true;
            break;
        case 'a':
            d->app = optarg;
            break;
        case 'j':
            d->json = true;
            break;
        case 'A':
            if (dump__parse_u64(optarg, &d->after) < 0) {
                dump__fail("invalid --after '%s' (a message id)", optarg);
                return RC_EINVAL;
            }
            after = true;
            break;
        case 'l':
            if (dump__parse_u64(optarg, &v) < 0 || v == 0 || v > TL_LIMIT_MAX) {
                dump__fail("invalid --limit '%s' (1..%d)", optarg, TL_LIMIT_MAX);
                return RC_EINVAL;
            }
            d->limit = (unsigned)v;
            break;
        case ':':
            dump__fail("%s needs a value", argv[optind - 1]);
            return RC_EINVAL;
        default:
            dump__fail("unknown option '%s' (see 'cimdump --help')", argv[optind - 1]);
            return RC_EINVAL;
        }
    }
    pos = argv + optind;
    npos = argc - optind;
    /* DESIGN.md's form: cimdump DIR COMMAND ... */
    if (npos >= 2 && find_cmd(pos[0]) == NULL && find_cmd(pos[1]) != NULL) {
        if (data_opt) {
            dump__fail("the data directory is given twice ('%s' and --data)", pos[0]);
            return RC_EINVAL;
        }
        d->data = pos[0];
        pos++;
        npos--;
    }
    if (npos == 0) {
        dump__fail("no command (see 'cimdump --help')");
        return RC_EINVAL;
    }
    if ((d->cmd = find_cmd(pos[0])) == NULL) {
        dump__fail("unknown command '%s' (see 'cimdump --help')", pos[0]);
        return RC_EINVAL;
    }
    if (npos - 1 != d->cmd->npos) {
        dump__fail("%s: expected %s%s (see 'cimdump --help')", d->cmd->name,
                   d->cmd->npos ? d->cmd->args : "no arguments",
                   npos - 1 > d->cmd->npos ? ", got more" : "");
        return RC_EINVAL;
    }
    if (!d->cmd->page && (after || d->limit)) {
        dump__fail("%s: --after and --limit apply to 'timeline' only", d->cmd->name);
        return RC_EINVAL;
    }
    d->pos = pos + 1;
    if (d->app == NULL || d->app[0] == '\0')
        d->app = DEFAULT_APP; /* PROTOCOL.md §6: an empty app is "default" */
    if (!kv_id_valid(d->app)) {
        dump__fail("invalid app name '%s' (1..%d characters of A-Z a-z 0-9 . _ @ -)", d->app,
                   KV_ID_MAX);
        return RC_EINVAL;
    }
    return 0;
}

int main(int argc, char **argv)
{
    dump_t d = {.data = DEFAULT_DATA, .logfd = -1};
    char *buf = NULL;
    size_t len = 0;
    int rc;

    jv_init();
    /* kv logs its findings (a foreign environment, a missing database) before it returns
     * RC_ESTORE; keep them out of the output and quote the last one in the error line. */
    d.logfd = memfd_create("cimdump-log", MFD_CLOEXEC);
    if (d.logfd >= 0) {
        log_set_fd(d.logfd);
        log_set_level(LOG_LVL_WARN);
    } else {
        log_set_level(-1); /* no memfd: silent rather than more than one line */
    }

    rc = parse_args(&d, argc, argv);
    if (rc == ARGS_HELP) {
        usage(stdout);
        return 0;
    }
    if (rc == ARGS_VERSION) {
        version_print("cimdump");
        return 0;
    }
    if (rc < 0)
        return EXIT_USAGE;

    if (d.cmd->data) {
        if ((rc = check_dir(d.data)) < 0)
            goto out;
        if ((rc = kv_open(d.data, KV_RDONLY, &d.kv)) < 0) {
            char detail[512];
            last_log(&d, detail, sizeof(detail));
            if (rc == RC_ESTORE)
                dump__fail("no cim data in %s: %s", d.data, detail[0] ? detail : rc_str(rc));
            else
                dump__fail("cannot open %s: %s", d.data, rc_str(rc));
            goto out;
        }
        if ((rc = kv_begin(d.kv, KV_READ, &d.txn)) < 0) {
            dump__fail_rc(&d, "cannot read the data", rc);
            goto out;
        }
    }
    if ((d.out = open_memstream(&buf, &len)) == NULL) {
        rc = -errno;
        dump__fail("cannot buffer the output: %s", strerror(errno));
        goto out;
    }
    rc = d.cmd->run(&d);
    /* The snapshot is read: end the transaction before anything is written out. */
    kv_abort(d.txn);
    d.txn = NULL;
    if (rc == 0 && d.json && jv_dump(d.doc, d.out) < 0) {
        rc = -ENOMEM;
        dump__fail("cannot buffer the output: %s", strerror(errno));
    }
    if (fclose(d.out) != 0) {
        d.out = NULL;
        rc = -ENOMEM;
        dump__fail("cannot buffer the output: %s", strerror(errno));
        goto out;
    }
    d.out = NULL;
    if (rc == 0 && (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0)) {
        rc = -EIO;
        dump__fail("cannot write the result: %s", strerror(errno));
    }
out:
    kv_abort(d.txn);
    kv_close(d.kv);
    json_decref(d.doc);
    free(buf); /* open_memstream's buffer comes from malloc */
    if (d.logfd >= 0)
        close(d.logfd);
    return rc < 0 ? EXIT_FAIL : 0;
}
