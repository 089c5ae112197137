/* cli: the session: device ids, connecting and logging in, pushes; login/whoami, ping. */
#include <ctype.h>
#include <inttypes.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cim/cli_int.h"
#include "core/frame.h"
#include "core/rc.h"

/* Take every push queued so far: the shell prints them, but for messages the last sync
 * printed already (their push may come just after the page that had them); one-shot mode
 * keeps stdout for the command's output and shows them on stderr with -v only. */
void cli__drain_pushes(cli_t *cli)
{
    cimc_push_t p;

    if (cli->c == NULL)
        return;
    while (cimc_next_push(cli->c, 0, &p) == 0) {
        bool dup = p.type == FT_PUSH && p.u.msg.msg_id != 0 && p.u.msg.msg_id >= cli->dup_lo &&
                   p.u.msg.msg_id <= cli->dup_hi;
        if (p.type == FT_PUSH && p.u.msg.msg_id > cli->seen)
            cli->seen = p.u.msg.msg_id;
        if (cli->in_shell && !dup && p.type != FT_BYE) /* the shell says why it ended */
            cli__print_push(cli, stdout, &p);
        else if (!cli->in_shell && cli->verbose)
            cli__print_push(cli, stderr, &p);
        cimc_push_free(&p);
    }
}

/* ---- connecting ----------------------------------------------------------------------- */

/* "cli-<hostname><suffix>", at most 64 bytes (the host name is cut to fit), with the
 * characters a device id may not hold as "-". */
static void host_device(char *out, size_t n, const char *suffix)
{
    char host[256] = "";
    size_t len;
    int room = 64 - 4 - (int)strlen(suffix);

    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "localhost");
    snprintf(out, n, "cli-%.*s%s", room, host, suffix);
    len = strlen(out);
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)out[i]) && strchr("._@:-", out[i]) == NULL)
            out[i] = '-';
}

void cli__pick_device(const cmd_t *cmd, char *out, size_t n)
{
    uint32_t r = 0;
    char sfx[16];

    if (cmd->flags & CMD_SHELL_DEVICE) {
        host_device(out, n, "-shell");
    } else if (cmd->flags & CMD_CURSOR) {
        host_device(out, n, "");
    } else {
        /* A one-shot device: it never acknowledges (no PUSH_ACK), so the server keeps
         * no cursor for it, and nothing is left behind when it logs out. */
        if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
            r = (uint32_t)getpid() ^ (uint32_t)time(NULL);
        snprintf(sfx, sizeof(sfx), "-%08" PRIx32, r);
        host_device(out, n, sfx);
    }
}

static int connect_error(const cli_t *cli, int rc, const uint8_t *seen, bool seen_valid)
{
    char hex[2 * CHAN_KEY + 1];

    switch (rc) {
    case RC_EKEY:
        if (seen_valid) {
            chan_hex(seen, hex);
            cli__fail("server key does not match the pinned key (got %s)", hex);
        } else {
            cli__fail("server key does not match the pinned key");
        }
        break;
    case RC_ENOTFOUND:
        cli__fail("cannot connect to %s:%d: host not found", cli->host, cli->port);
        break;
    case RC_ETIMEDOUT:
        cli__fail("cannot connect to %s:%d: timed out", cli->host, cli->port);
        break;
    case RC_ECLOSED:
        cli__fail("%s:%d closed the connection during the handshake", cli->host, cli->port);
        break;
    case RC_ECRYPTO:
        cli__fail("handshake with %s:%d failed: bad server signature or key", cli->host, cli->port);
        break;
    case RC_EPROTO:
        cli__fail("handshake with %s:%d failed: protocol error", cli->host, cli->port);
        break;
    default:
        cli__fail("cannot connect to %s:%d: %s", cli->host, cli->port, rc_str(rc));
        break;
    }
    return EXIT_FAIL;
}

/* Whether a login refused with @p code may succeed later as it is (the server was busy,
 * or stopping) rather than needing something else (a new token). */
static bool login_retryable(cim_Code code)
{
    return code == cim_Code_SERVER_BUSY || code == cim_Code_RATE_LIMITED ||
           code == cim_Code_INTERNAL || code == cim_Code_SHUTTING_DOWN || code == cim_Code_TIMEOUT;
}

int cli__go_online(cli_t *cli, bool *retryable)
{
    cimc_opts_t o;
    cim_LoginReq req = cim_LoginReq_init_zero;
    uint8_t seen[CHAN_KEY];
    char hex[2 * CHAN_KEY + 1];
    cimc_t *c = NULL;
    bool retry = true;
    int rc;

    if (cli->c != NULL)
        return EXIT_OK;
    memset(&o, 0, sizeof(o));
    memset(seen, 0, sizeof(seen));
    o.host = cli->host;
    o.port = cli->port;
    o.pinned_key = cli->has_key ? cli->key : NULL;
    o.trust_on_first_use = cli->tofu;
    o.timeout_ms = cli->timeout_ms;
    o.key_seen = seen;
    if ((rc = cimc_connect(&o, &c)) < 0) {
        /* another identity, or a signature that does not verify: trying again cannot help */
        retry = rc != RC_EKEY && rc != RC_ECRYPTO;
        connect_error(cli, rc, seen, rc == RC_EKEY);
        goto fail;
    }
    if (cli->tofu) {
        chan_hex(cimc_server_key(c), hex);
        cli__fail("warning: --tofu: trusting server key %s unverified; pin it with --key %s", hex,
                  hex);
        /* trusted once: a reconnect (the shell's) must meet the same key */
        memcpy(cli->key, cimc_server_key(c), CHAN_KEY);
        cli->has_key = true;
        cli->tofu = false;
    }

    snprintf(req.app, sizeof(req.app), "%s", cli->app);
    snprintf(req.user, sizeof(req.user), "%s", cli->user);
    snprintf(req.token, sizeof(req.token), "%s", cli->token);
    snprintf(req.device_id, sizeof(req.device_id), "%s", cli->device);
    req.device_kind = cli->kind;
    snprintf(req.client_version, sizeof(req.client_version), "cim-cli/1");
    cli->c = c;
    rc = cimc_login(c, &req, &cli->session);
    memset(&req, 0, sizeof(req)); /* the token */
    if (rc < 0) {
        cli__fail_rc(cli, "login", rc);
        goto fail;
    }
    if (cli->session.code != cim_Code_OK) {
        cli__fail("login refused: %s: %s", cimc_code_str(cli->session.code), cli->session.reason);
        retry = login_retryable(cli->session.code);
        goto fail;
    }
    cli->acked = cli->session.acked_msg_id;
    return EXIT_OK;
fail:
    cimc_close(c);
    cli->c = NULL;
    if (retryable != NULL)
        *retryable = retry;
    return EXIT_FAIL;
}

/* ---- login, whoami, ping ---------------------------------------------------------------- */

int cli__cmd_session(cli_t *cli, int argc, char **argv)
{
    const cim_LoginRsp *s = &cli->session;
    char hex[2 * CHAN_KEY + 1], when[40];
    int rc;

    if ((rc = cli__no_args(cli__find_cmd(argv[0]), argc, argv)) != EXIT_OK)
        return rc;
    chan_hex(cimc_server_key(cli->c), hex);
    cli__fmt_time_ms(s->server_time_ms, when, sizeof(when));
    printf("user:         %s\n", cli->user);
    printf("app:          %s\n", cli->app[0] ? cli->app : "default");
    printf("device:       %s (%s)\n", cli->device, cli__kind_name(cli->kind));
    printf("server:       %s:%d\n", cli->host, cli->port);
    printf("server key:   %s\n", hex);
    printf("server time:  %s\n", when);
    printf("heartbeat:    %" PRIu32 " s\n", s->heartbeat_s);
    printf("max body:     %" PRIu32 " bytes\n", s->max_body);
    printf("latest msg:   %" PRIu64 "\n", s->latest_msg_id);
    printf("acked msg:    %" PRIu64 "\n", s->acked_msg_id);
    return EXIT_OK;
}

int cli__cmd_ping(cli_t *cli, int argc, char **argv)
{
    uint64_t rtt;
    int rc;

    if ((rc = cli__no_args(cli__find_cmd(argv[0]), argc, argv)) != EXIT_OK)
        return rc;
    if ((rc = cimc_ping(cli->c, &rtt)) < 0) {
        cli__fail_rc(cli, "ping", rc);
        return EXIT_FAIL;
    }
    printf("pong from %s:%d: rtt %.3f ms\n", cli->host, cli->port, (double)rtt / 1000.0);
    return EXIT_OK;
}
