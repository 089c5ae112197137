#include "support/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/chan.h"
#include "core/kv.h"
#include "core/token.h"
#include "support/test.h"
#include "support/tnats.h"

#define MAX_ARGS 64
#define PEERS 2 /* nodes 2 and 3 of a test cluster (tsrv_clustered) */

struct tsrv_cluster {
    tnats_t nats;
    tsrv_t peer[PEERS];
};

static bool log_has_own(const tsrv_t *t, const char *needle);

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void tsrv_dump_file(const char *title, const char *path)
{
    char buf[4096];
    size_t n;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    fprintf(stderr, "---- %s ----\n", title);
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, stderr);
    fclose(f);
}

void tsrv_dump_log(const tsrv_t *t)
{
    char title[64];

    if (t->cluster == NULL) {
        tsrv_dump_file("cimd log", t->log);
        return;
    }
    tsrv_dump_file("cimd log (node 1)", t->log);
    for (int i = 0; i < PEERS; i++) {
        snprintf(title, sizeof(title), "cimd log (node %d)", i + 2);
        tsrv_dump_file(title, t->cluster->peer[i].log);
    }
    tnats_dump_log(&t->cluster->nats);
}

int tsrv_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    ASSERT_TRUE(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &len));
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Wait for the ready line and take the port, the key and the "new identity" note from it:
 *   "... cimd ready: listening on HOST:PORT key HEX64 workers N[ (new identity created in
 *   DIR)]". The port ends the word after "listening on " (a ':' in DIR must not count). */
static bool read_ready(tsrv_t *t)
{
    char line[1024];
    FILE *f = fopen(t->log, "r");
    bool ok = false;
    if (f == NULL)
        return false;
    if (t->log_off > 0 && fseek(f, t->log_off, SEEK_SET) != 0) {
        fclose(f);
        return false;
    }
    t->admin_port = t->ws_port = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *p = strstr(line, "cimd ready: listening on ");
        char *k = strstr(line, " key ");
        char *ad = strstr(line, "admin: listening on ");
        char *ws = strstr(line, "ws: listening on ");
        if (ad != NULL && strrchr(ad, ':') != NULL)
            t->admin_port = atoi(strrchr(ad, ':') + 1);
        if (ws != NULL)
            t->ws_port = atoi(strchr(ws + 17 + 1, ':') ? strrchr(strtok(ws + 17, " "), ':') + 1
                                                        : "0");
        if (p == NULL || k == NULL)
            continue;
        char hex[65], addr[128];
        char *colon;
        snprintf(addr, sizeof(addr), "%.*s", (int)strcspn(p + 25, " "), p + 25);
        colon = strrchr(addr, ':');
        t->port = colon != NULL ? atoi(colon + 1) : 0;
        snprintf(hex, sizeof(hex), "%.64s", k + 5);
        t->new_identity = strstr(k, " (new identity created in ") != NULL;
        ok = chan_unhex(hex, t->key) == 0 && t->port > 0;
        break;
    }
    fclose(f);
    return ok;
}

/* Fork and exec cimd with the data dir, the listen address and the saved extra flags, then
 * wait for its ready line (read from t->log_off on). */
static void spawn(tsrv_t *t)
{
    char *argv[MAX_ARGS];
    int argc = 0;
    size_t off = 0;

    argv[argc++] = CIM_BIN_DIR "/cimd";
    argv[argc++] = "--data";
    argv[argc++] = t->dir;
    argv[argc++] = "--listen";
    argv[argc++] = "127.0.0.1:0";
    argv[argc++] = "--durability";
    argv[argc++] = "nosync";
    /* Any free port (a later flag may turn it off), read back from the log as the port. */
    argv[argc++] = "--admin_listen";
    argv[argc++] = "127.0.0.1:0";
    argv[argc++] = "--ws_listen";
    argv[argc++] = "127.0.0.1:0";
    for (int i = 0; i < t->nargs && argc < MAX_ARGS - 1; i++) {
        argv[argc++] = t->args + off;
        off += strlen(t->args + off) + 1;
    }
    argv[argc] = NULL;

    t->pid = tsrv_spawn_logged(t->log, argv);
    for (int i = 0; i < 1000; i++) {
        int status;
        if (read_ready(t))
            return;
        if (waitpid(t->pid, &status, WNOHANG) == t->pid) {
            tsrv_dump_log(t);
            TEST_FAIL_("cimd exited before it was ready (status %d)", status);
        }
        sleep_ms(10);
    }
    tsrv_dump_log(t);
    TEST_FAIL_("cimd did not get ready within 10 s");
}

static void add_args_v(tsrv_t *t, va_list ap)
{
    char *a;

    while ((a = va_arg(ap, char *)) != NULL && t->nargs < MAX_ARGS - 8) {
        size_t n = strlen(a) + 1;
        ASSERT_TRUE(t->args_len + n <= sizeof(t->args));
        memcpy(t->args + t->args_len, a, n);
        t->args_len += n;
        t->nargs++;
    }
}

static void add_args(tsrv_t *t, ...) __attribute__((sentinel));
static void add_args(tsrv_t *t, ...)
{
    va_list ap;
    va_start(ap, t);
    add_args_v(t, ap);
    va_end(ap);
}

bool tsrv_clustered(void)
{
    const char *v = getenv("CIM_TEST_CLUSTER");
    return v != NULL && strcmp(v, "1") == 0;
}

/* Every node of t's cluster, node 1 (t) first: *n of them. */
static tsrv_t *node_at(tsrv_t *t, int i)
{
    return i == 0 ? t : &t->cluster->peer[i - 1];
}

static int nodes_of(const tsrv_t *t)
{
    return t->cluster == NULL ? 1 : 1 + PEERS;
}

const char *tsrv_node_dir(const tsrv_t *t, int i)
{
    if (i < 0 || i >= nodes_of(t))
        return NULL;
    return i == 0 ? t->dir : t->cluster->peer[i - 1].dir;
}

/* Until every node's log (this run's part) says the other nodes are up: 15 s at most. */
static void cluster_wait_formed(tsrv_t *t)
{
    char needle[64];

    for (int i = 0; i < nodes_of(t); i++)
        for (int j = 0; j < nodes_of(t); j++) {
            int waited = 0;
            if (i == j)
                continue;
            snprintf(needle, sizeof(needle), "cluster: node %d is up", j + 1);
            while (!log_has_own(node_at(t, i), needle)) {
                if (waited >= 15000) {
                    tsrv_dump_log(t);
                    TEST_FAIL_("test cluster: node %d does not see node %d up", i + 1, j + 1);
                }
                sleep_ms(20);
                waited += 20;
            }
        }
}

/* Node 1 is t, on t->dir; nodes 2 and 3 on copies of it (initialised first when empty: one
 * identity key and the same apps for all), with t's extra flags; the bus is a nats-server
 * of its own. Started, then waited for until every node sees the others. */
static void cluster_start(tsrv_t *t)
{
    struct tsrv_cluster *c = calloc(1, sizeof(*c));
    char path[300], cmd[700], out[512], nid[16];
    struct stat st;

    ASSERT_NOT_NULL(c);
    snprintf(path, sizeof(path), "%s/identity.key", t->dir);
    if (stat(path, &st) != 0)
        ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t->dir, "init", NULL), 0);
    tnats_start(&c->nats);
    t->cluster = c;
    for (int i = 0; i < PEERS; i++) {
        tsrv_t *p = &c->peer[i];
        snprintf(p->dir, sizeof(p->dir), "/tmp/cimtest-XXXXXX");
        ASSERT_NOT_NULL(mkdtemp(p->dir));
        snprintf(cmd, sizeof(cmd), "cp -a '%s/.' '%s/'", t->dir, p->dir);
        ASSERT_EQ(system(cmd), 0);
        snprintf(path, sizeof(path), "%s/cimd.log", p->dir); /* not p->dir into p: GCC's
                                                                -Wrestrict at -O1 */
        snprintf(p->log, sizeof(p->log), "%s", path);
        unlink(p->log); /* node 1's, if the directory had run before */
        memcpy(p->args, t->args, t->args_len);
        p->args_len = t->args_len;
        p->nargs = t->nargs;
        snprintf(nid, sizeof(nid), "%d", i + 2);
        add_args(p, "--node_id", nid, "--cluster_url", c->nats.url, "--cluster_nodes", "1,2,3",
                 NULL);
    }
    add_args(t, "--node_id", "1", "--cluster_url", c->nats.url, "--cluster_nodes", "1,2,3",
             NULL);
    for (int i = 0; i < nodes_of(t); i++)
        spawn(node_at(t, i));
    cluster_wait_formed(t);
}

/* Save the extra flags and start cimd on t->dir (a cluster under CIM_TEST_CLUSTER=1). */
static void start_v(tsrv_t *t, va_list ap)
{
    snprintf(t->log, sizeof(t->log), "%s/cimd.log", t->dir);
    add_args_v(t, ap);
    if (tsrv_clustered())
        cluster_start(t);
    else
        spawn(t);
}

void tsrv_start(tsrv_t *t, ...)
{
    va_list ap;

    memset(t, 0, sizeof(*t));
    snprintf(t->dir, sizeof(t->dir), "/tmp/cimtest-XXXXXX");
    ASSERT_NOT_NULL(mkdtemp(t->dir));
    va_start(ap, t);
    start_v(t, ap);
    va_end(ap);
}

void tsrv_start_on(tsrv_t *t, const char *dir, ...)
{
    va_list ap;

    memset(t, 0, sizeof(*t));
    ASSERT_TRUE(strlen(dir) < sizeof(t->dir));
    snprintf(t->dir, sizeof(t->dir), "%s", dir);
    va_start(ap, dir);
    start_v(t, ap);
    va_end(ap);
}

void tsrv_restart(tsrv_t *t)
{
    struct stat st;
    int status;

    for (int i = 0; i < nodes_of(t); i++) {
        tsrv_t *n = node_at(t, i);
        if (n->pid > 0) {
            kill(n->pid, SIGTERM);
            waitpid(n->pid, &status, 0);
            n->pid = 0;
        }
    }
    for (int i = 0; i < nodes_of(t); i++) {
        tsrv_t *n = node_at(t, i);
        /* The new run's ready line is the one after everything logged so far. */
        n->log_off = stat(n->log, &st) == 0 ? (long)st.st_size : 0;
        n->port = 0;
        spawn(n);
    }
    if (t->cluster != NULL)
        cluster_wait_formed(t);
}

static void remove_dir(const char *dir)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* SIGTERM and wait (10 s at most); the exit status, or -1. */
static int stop_wait(tsrv_t *t)
{
    int status = 0;
    kill(t->pid, SIGTERM);
    for (int i = 0; i < 1000; i++) {
        if (waitpid(t->pid, &status, WNOHANG) == t->pid) {
            t->pid = 0;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                tsrv_dump_log(t);
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        sleep_ms(10);
    }
    tsrv_dump_log(t);
    kill(t->pid, SIGKILL);
    waitpid(t->pid, &status, 0);
    t->pid = 0;
    TEST_FAIL_("cimd did not stop within 10 s of SIGTERM");
}

/* A cluster's nodes 2 and 3 (stopped, their directories removed) and its bus; the worst
 * exit status of the nodes that ran, else @p rc. */
static int cluster_stop(tsrv_t *t, int rc)
{
    struct tsrv_cluster *c = t->cluster;

    if (c == NULL)
        return rc;
    for (int i = 0; i < PEERS; i++) {
        int prc = c->peer[i].pid > 0 ? stop_wait(&c->peer[i]) : 0;
        remove_dir(c->peer[i].dir);
        if (prc != 0 && rc == 0)
            rc = prc;
    }
    tnats_free(&c->nats);
    free(c);
    t->cluster = NULL;
    return rc;
}

int tsrv_stop(tsrv_t *t)
{
    int rc = t->pid > 0 ? stop_wait(t) : -1;
    remove_dir(t->dir);
    return cluster_stop(t, rc);
}

int tsrv_stop_keep(tsrv_t *t)
{
    return cluster_stop(t, t->pid > 0 ? stop_wait(t) : -1);
}

void tsrv_kill(tsrv_t *t)
{
    int status;
    for (int i = 0; i < nodes_of(t); i++) {
        tsrv_t *n = node_at(t, i);
        if (n->pid <= 0)
            continue;
        kill(n->pid, SIGKILL);
        waitpid(n->pid, &status, 0);
        n->pid = 0;
    }
}

void tsrv_token(const tsrv_t *t, const char *app, const char *user, long ttl, char *out,
                size_t outlen)
{
    kv_t *kv = NULL;
    kv_txn_t *txn = NULL;
    uint8_t secret[32];

    ASSERT_OK(kv_open(t->dir, KV_RDONLY, &kv));
    ASSERT_OK(kv_begin(kv, KV_READ, &txn));
    ASSERT_OK(kv_app_get(txn, app[0] ? app : "default", secret));
    kv_abort(txn);
    kv_close(kv);
    ASSERT_OK(token_mint(secret, app, user, (int64_t)time(NULL) + ttl, out, outlen));
}

/* The node a new client connection of a test cluster goes to: one at random (rand_r,
 * seeded once from CIM_TEST_SEED or the time, and said, so that a failure can be re-run). */
static const tsrv_t *pick_node(const tsrv_t *t)
{
    static unsigned seed;
    static bool seeded;
    int i;

    if (t->cluster == NULL)
        return t;
    if (!seeded) {
        const char *v = getenv("CIM_TEST_SEED");
        seed = v != NULL ? (unsigned)strtoul(v, NULL, 10) : (unsigned)time(NULL);
        seeded = true;
        fprintf(stderr, "test cluster: clients on random nodes, CIM_TEST_SEED=%u\n", seed);
    }
    i = rand_r(&seed) % (1 + PEERS);
    return i == 0 ? t : &t->cluster->peer[i - 1];
}

cimc_opts_t tsrv_opts(const tsrv_t *t)
{
    cimc_opts_t o;
    memset(&o, 0, sizeof(o));
    t = pick_node(t);
    o.host = "127.0.0.1";
    o.port = t->port;
    o.pinned_key = t->key;
    o.timeout_ms = 10000;
    /* CIM_TEST_TRANSPORT=ws: every client of the suite goes over the WebSocket endpoint
     * (the same sessions behind it: tools/bootstrap test runs the messaging suites so). */
    if (tsrv_over_ws() && t->ws_port > 0) {
        o.port = t->ws_port;
        o.ws_path = "/ws";
    }
    return o;
}

bool tsrv_over_ws(void)
{
    const char *v = getenv("CIM_TEST_TRANSPORT");
    return v != NULL && strcmp(v, "ws") == 0;
}

cimc_t *tsrv_connect(const tsrv_t *t)
{
    cimc_opts_t o = tsrv_opts(t);
    cimc_t *c = NULL;
    int rc = cimc_connect(&o, &c);
    if (rc != 0) {
        tsrv_dump_log(t);
        TEST_FAIL_("cimc_connect: %s", rc_str(rc));
    }
    return c;
}

cimc_t *tsrv_login(const tsrv_t *t, const char *user, const char *device, cim_LoginRsp *rsp)
{
    cim_LoginReq req = cim_LoginReq_init_zero;
    cim_LoginRsp r = cim_LoginRsp_init_zero;
    cimc_t *c = tsrv_connect(t);
    int rc;

    snprintf(req.user, sizeof(req.user), "%s", user);
    snprintf(req.device_id, sizeof(req.device_id), "%s", device);
    req.device_kind = cim_DeviceKind_DESKTOP;
    tsrv_token(t, "", user, 3600, req.token, sizeof(req.token));
    rc = cimc_login(c, &req, &r);
    if (rc != 0 || r.code != cim_Code_OK) {
        tsrv_dump_log(t);
        TEST_FAIL_("login %s/%s: rc %s, code %d (%s)", user, device, rc_str(rc), r.code,
                   r.reason);
    }
    if (rsp != NULL)
        *rsp = r;
    return c;
}

pid_t tsrv_spawn_logged(const char *log, char *const argv[])
{
    pid_t pid;

    fflush(NULL);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

int tsrv_run_tool(char *out, size_t outlen, const char *prog, ...)
{
    char *argv[MAX_ARGS];
    char path[512];
    int argc = 0, pfd[2], status;
    size_t used = 0;
    ssize_t n;
    va_list ap;
    char *a;
    pid_t pid;

    snprintf(path, sizeof(path), "%s/%s", CIM_BIN_DIR, prog);
    argv[argc++] = path;
    va_start(ap, prog);
    while ((a = va_arg(ap, char *)) != NULL && argc < MAX_ARGS - 1)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    ASSERT_OK(pipe(pfd));
    fflush(NULL);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execv(path, argv);
        _exit(127);
    }
    close(pfd[1]);
    while ((n = read(pfd[0], out + used, outlen - 1 - used)) > 0)
        used += (size_t)n;
    out[used] = '\0';
    close(pfd[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

long tsrv_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    return (long)rl.rlim_cur;
}

/* ---- tools in the background ------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tsrv_tool_start(tsrv_tool_t *tt, const void *in, size_t in_len, const char *prog, ...)
{
    char *argv[MAX_ARGS];
    char path[512], tmp[] = "/tmp/cimtest-stdin-XXXXXX";
    int argc = 0, opfd[2], epfd[2], infd;
    va_list ap;
    char *a;

    memset(tt, 0, sizeof(*tt));
    tt->out_fd = tt->err_fd = -1;
    snprintf(path, sizeof(path), "%s/%s", CIM_BIN_DIR, prog);
    argv[argc++] = path;
    va_start(ap, prog);
    while ((a = va_arg(ap, char *)) != NULL && argc < MAX_ARGS - 1)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;

    if (in != NULL) {
        const char *p = in;
        size_t left = in_len;
        infd = mkstemp(tmp);
        ASSERT_TRUE(infd >= 0);
        unlink(tmp);
        while (left > 0) {
            ssize_t w = write(infd, p, left);
            ASSERT_TRUE(w > 0);
            p += w;
            left -= (size_t)w;
        }
        ASSERT_TRUE(lseek(infd, 0, SEEK_SET) == 0);
    } else {
        infd = open("/dev/null", O_RDONLY);
        ASSERT_TRUE(infd >= 0);
    }
    ASSERT_OK(pipe(opfd));
    ASSERT_OK(pipe(epfd));
    fflush(NULL);
    tt->pid = fork();
    ASSERT_TRUE(tt->pid >= 0);
    if (tt->pid == 0) {
        dup2(infd, 0);
        dup2(opfd[1], 1);
        dup2(epfd[1], 2);
        close(infd);
        close(opfd[0]);
        close(opfd[1]);
        close(epfd[0]);
        close(epfd[1]);
        execv(path, argv);
        _exit(127);
    }
    close(infd);
    close(opfd[1]);
    close(epfd[1]);
    tt->out_fd = opfd[0];
    tt->err_fd = epfd[0];
}

/* Read what one stream has ready into its buffer. */
static void tool_read(int *fd, char *buf, size_t cap, size_t *len)
{
    char tmp[4096];
    ssize_t n = read(*fd, tmp, sizeof(tmp));
    size_t take;

    if (n < 0 && errno == EINTR)
        return;
    if (n <= 0) {
        close(*fd);
        *fd = -1;
        return;
    }
    take = *len + (size_t)n < cap ? (size_t)n : cap - 1 - *len;
    memcpy(buf + *len, tmp, take);
    *len += take;
    buf[*len] = '\0';
}

/* Wait up to @p ms (0: no wait) for output and take it. @return false once both are closed. */
static bool tool_pump(tsrv_tool_t *tt, int ms)
{
    struct pollfd pfd[2];
    nfds_t n = 0;
    int r;

    if (tt->out_fd >= 0)
        pfd[n++] = (struct pollfd){.fd = tt->out_fd, .events = POLLIN};
    if (tt->err_fd >= 0)
        pfd[n++] = (struct pollfd){.fd = tt->err_fd, .events = POLLIN};
    if (n == 0)
        return false;
    r = poll(pfd, n, ms);
    if (r <= 0)
        return true;
    for (nfds_t i = 0; i < n; i++) {
        if (pfd[i].revents == 0)
            continue;
        if (pfd[i].fd == tt->out_fd)
            tool_read(&tt->out_fd, tt->out, sizeof(tt->out), &tt->out_len);
        else
            tool_read(&tt->err_fd, tt->err, sizeof(tt->err), &tt->err_len);
    }
    return true;
}

bool tsrv_tool_wait_for(tsrv_tool_t *tt, const char *needle, unsigned timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms, left;

    for (;;) {
        if (strstr(tt->out, needle) != NULL || strstr(tt->err, needle) != NULL)
            return true;
        left = deadline - now_ms();
        if (left <= 0 || !tool_pump(tt, (int)left))
            return strstr(tt->out, needle) != NULL || strstr(tt->err, needle) != NULL;
    }
}

int tsrv_tool_finish(tsrv_tool_t *tt, unsigned timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms, left;
    bool killed = false;
    int status = 0;
    pid_t r;

    for (;;) {
        left = deadline - now_ms();
        if (left <= 0 || !tool_pump(tt, (int)left))
            break;
    }
    for (;;) {
        r = waitpid(tt->pid, &status, WNOHANG);
        if (r == tt->pid)
            break;
        if (r < 0 && errno != EINTR)
            TEST_FAIL_("waitpid: %s", strerror(errno));
        if (now_ms() >= deadline) {
            kill(tt->pid, SIGKILL);
            while (waitpid(tt->pid, &status, 0) < 0 && errno == EINTR)
                ;
            killed = true;
            break;
        }
        sleep_ms(5);
    }
    tt->pid = 0;
    if (tt->out_fd >= 0)
        close(tt->out_fd);
    if (tt->err_fd >= 0)
        close(tt->err_fd);
    tt->out_fd = tt->err_fd = -1;
    return !killed && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool tsrv_log_has(const tsrv_t *t, const char *needle)
{
    for (int i = 0; i < nodes_of(t); i++)
        if (log_has_own(node_at((tsrv_t *)t, i), needle))
            return true;
    return false;
}

/* One node's log (this run's part). */
static bool log_has_own(const tsrv_t *t, const char *needle)
{
    FILE *f = fopen(t->log, "r");
    char line[2048];
    bool found = false;

    ASSERT_NOT_NULL(f);
    if (t->log_off > 0)
        ASSERT_EQ(fseek(f, t->log_off, SEEK_SET), 0);
    while (!found && fgets(line, sizeof(line), f) != NULL)
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}
