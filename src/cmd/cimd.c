/* cimd: the cim server. Wiring only: configuration, signals, server start/run/stop. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "actors/server.h"
#include "core/chan.h"
#include "core/conf.h"
#include "core/log.h"
#include "core/notify.h"
#include "core/rc.h"
#include "core/version.h"

static void usage(void)
{
    printf("usage: cimd [--data DIR] [--listen HOST:PORT] [--config FILE] [--KEY VALUE ...]\n"
           "       cimd --help | --version\n"
           "\n"
           "The cim instant-messaging server. Every configuration key is also a flag;\n"
           "flags override the config file. Keys:\n\n");
    fflush(stdout);
    conf_usage(1);
}

/* Every connection is a descriptor: take the whole hard limit (max_conns is the policy
 * knob; the kernel limit should not be a hidden second one). */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            LOG_WARN("cannot raise the open-file limit to %llu",
                     (unsigned long long)rl.rlim_max);
    }
}

int main(int argc, char **argv)
{
    conf_t conf;
    server_t *srv = NULL;
    char err[512];
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage();
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            version_print("cimd");
            return 0;
        }
    }
    conf_defaults(&conf);
    if (conf_parse_args(&conf, argc, argv, err, sizeof(err)) < 0) {
        fprintf(stderr, "cimd: %s\n", err);
        return 2;
    }
    log_set_level(conf.log_level);
    if (conf.log_format == LOG_FMT_JSON)
        log_use_json();
    raise_nofile();
    notify_init();
    /* libuv does not ignore SIGPIPE; a peer that vanishes mid-write must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    if ((rc = chan_global_init()) < 0) {
        LOG_ERROR("OpenSSL lacks what cim needs: %s", rc_str(rc));
        return 1;
    }
    /* server_start logs why it failed, as one line (e.g. "data directory D is in use by
     * another cimd (pid P)"): a second line would only repeat it. */
    if (server_start(&conf, &srv) < 0) {
        chan_global_free();
        return 1;
    }
    rc = server_run(srv);
    server_free(srv);
    chan_global_free();
    if (rc < 0) {
        LOG_ERROR("cimd failed: %s", rc_str(rc));
        return 1;
    }
    return 0;
}
