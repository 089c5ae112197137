#include "support/tnats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support/server.h"
#include "support/test.h"

#define START_TRIES 3 /* a port taken between choosing and binding: try another */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* nats-server: $NATS_SERVER, a directory of PATH, or Debian's /usr/sbin. */
static void find_server(char *out, size_t len)
{
    const char *env = getenv("NATS_SERVER"), *path = getenv("PATH");
    char dirs[4096];

    if (env != NULL && access(env, X_OK) == 0) {
        snprintf(out, len, "%s", env);
        return;
    }
    snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/usr/local/sbin", path ? path : "/usr/bin");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d != NULL;
         d = strtok_r(NULL, ":", &save)) {
        snprintf(out, len, "%s/nats-server", d);
        if (access(out, X_OK) == 0)
            return;
    }
    TEST_FAIL_("nats-server not found (apt-get install nats-server, or tools/bootstrap deps; "
               "or set NATS_SERVER)");
}

static bool accepts(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok;

    ASSERT_TRUE(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

void tnats_dump_log(const tnats_t *n)
{
    tsrv_dump_file("nats-server log", n->log);
}

/* Run the server on n->port; @return true once it accepts, false when it exited (a port
 * someone else took). Aborts when it neither accepts nor exits within 10 s. */
static bool spawn(tnats_t *n)
{
    char bin[512], port[16], store[300];
    char *argv[] = {bin, "-a", "127.0.0.1", "-p", port, "-js", "-sd", store, NULL, NULL, NULL};
    int status;

    if (n->conf[0] != '\0') { /* JetStream and its store are in the file (write_conf) */
        argv[5] = "-c";
        argv[6] = n->conf;
        argv[7] = NULL;
    }

    find_server(bin, sizeof(bin));
    snprintf(port, sizeof(port), "%d", n->port);
    snprintf(store, sizeof(store), "%s/js", n->dir);
    n->pid = tsrv_spawn_logged(n->log, argv);
    for (int i = 0; i < 1000; i++) {
        if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
            n->pid = 0;
            return false;
        }
        if (accepts(n->port))
            return true;
        sleep_ms(10);
    }
    tnats_dump_log(n);
    TEST_FAIL_("nats-server did not accept on port %d within 10 s", n->port);
    return false;
}

static void write_conf(tnats_t *n, const char *conf)
{
    FILE *f;

    snprintf(n->conf, sizeof(n->conf), "%s/nats.conf", n->dir);
    ASSERT_NOT_NULL(f = fopen(n->conf, "w"));
    /* what the flags say without a file: a reload reads only the file */
    ASSERT_TRUE(fprintf(f, "jetstream {\n  store_dir: \"%s/js\"\n}\n", n->dir) > 0);
    ASSERT_TRUE(fputs(conf, f) >= 0);
    ASSERT_EQ(fclose(f), 0);
}

/* A fresh directory for @p n, with @p conf (NULL: none), then the server on a free port. */
static void start(tnats_t *n, const char *conf)
{
    memset(n, 0, sizeof(*n));
    snprintf(n->dir, sizeof(n->dir), "/tmp/cimtest-nats-XXXXXX");
    ASSERT_NOT_NULL(mkdtemp(n->dir));
    snprintf(n->log, sizeof(n->log), "%s/nats.log", n->dir);
    if (conf != NULL)
        write_conf(n, conf);
    for (int i = 0; i < START_TRIES; i++) {
        n->port = tsrv_free_port();
        snprintf(n->url, sizeof(n->url), "nats://127.0.0.1:%d", n->port);
        if (spawn(n))
            return;
    }
    tnats_dump_log(n);
    TEST_FAIL_("nats-server exited at start %d times", START_TRIES);
}

void tnats_start(tnats_t *n)
{
    start(n, NULL);
}

void tnats_start_conf(tnats_t *n, const char *conf)
{
    start(n, conf);
}

/* How many times the log has @p what. */
static int log_count(const tnats_t *n, const char *what)
{
    char line[1024];
    int count = 0;
    FILE *f = fopen(n->log, "r");

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        count += strstr(line, what) != NULL;
    fclose(f);
    return count;
}

void tnats_reload(tnats_t *n, const char *conf)
{
    int before = log_count(n, "Reloaded server configuration");

    ASSERT_TRUE(n->pid > 0);
    write_conf(n, conf);
    ASSERT_EQ(kill(n->pid, SIGHUP), 0);
    for (int i = 0; i < 1000; i++) {
        if (log_count(n, "Reloaded server configuration") > before)
            return;
        sleep_ms(10);
    }
    tnats_dump_log(n);
    TEST_FAIL_("nats-server did not reload its configuration within 10 s");
}

/* Send @p sig and reap; SIGKILL after 10 s. */
static void end(tnats_t *n, int sig)
{
    int status;

    if (n->pid <= 0)
        return;
    kill(n->pid, sig);
    for (int i = 0; i < 1000; i++) {
        if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
            n->pid = 0;
            return;
        }
        sleep_ms(10);
    }
    kill(n->pid, SIGKILL);
    while (waitpid(n->pid, &status, 0) < 0 && errno == EINTR)
        ;
    n->pid = 0;
}

void tnats_stop(tnats_t *n)
{
    end(n, SIGTERM);
}

void tnats_kill(tnats_t *n)
{
    end(n, SIGKILL);
}

void tnats_restart(tnats_t *n)
{
    end(n, SIGTERM);
    /* The port was ours a moment ago; one that another process took meanwhile is a
     * failure of the test's machine, not of the code under test: say so. */
    for (int i = 0; i < 100; i++) {
        if (spawn(n))
            return;
        sleep_ms(50);
    }
    tnats_dump_log(n);
    TEST_FAIL_("nats-server could not start again on port %d", n->port);
}

void tnats_free(tnats_t *n)
{
    char cmd[400];

    end(n, SIGTERM);
    if (n->dir[0] == '\0')
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", n->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", n->dir);
}
