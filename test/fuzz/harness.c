/* The session fuzz harness (see harness.h for the input format and the oracle).
 *
 * Why it looks like this:
 *  - The server context is real (LMDB in a temp dir, router, store thread, one worker, an
 *    acceptor) so that a handler reaches exactly what it reaches in cimd. The worker has no
 *    thread: worker_open sets up its loop and the harness turns it with UV_RUN_NOWAIT. The
 *    acceptor listens on 127.0.0.1:0 on the worker's loop; nobody connects, it is there
 *    because closing sessions report to it (acceptor_conn_closed).
 *  - Each input gets a socketpair: one end is adopted by session_open exactly like an
 *    accepted TCP socket, the other is read by the harness (what the server answers) and
 *    is never written, so every input byte enters through session_feed, the function the
 *    read callback calls.
 *  - Modes 1 and 2 skip the handshake with fixed keys: the handshake's keys are random,
 *    so a fuzzer could never produce a frame that opens; with fixed keys the harness seals
 *    the fuzzer's plaintext and decryption and nanopb decoding are reached for every type.
 *  - The users FUZZ_USER and FUZZ_PEER are registered at setup, so a login never posts a
 *    user's creation to the store.
 *  - A session may be freed by any loop turn (its close callback), so after each turn it
 *    is looked up again by id (worker_find) and never touched through a stale pointer.
 *  - State is reset after every input (reset_data). The reset reaches into kv's internals
 *    (kv_int.h: the MDB_env and the LMDB transaction) because emptying every database is
 *    a test's need that no part of the server has; doing it through kv's own
 *    transactions keeps the one-writer rule (the store is stopped meanwhile). Restarting
 *    the store is what makes "nothing queued, nothing in flight" certain: store_stop
 *    commits what is queued and joins the thread. It costs a thread start per input. */
#include "fuzz/harness.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <lmdb.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "actors/acceptor.h"
#include "actors/cluster.h"
#include "actors/router.h"
#include "actors/server.h"
#include "actors/session.h"
#include "actors/store.h"
#include "actors/worker.h"
#include "cim.pb.h"
#include "core/chan.h"
#include "core/conf.h"
#include "core/frame.h"
#include "core/kv.h"
#include "core/kv_int.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/token.h"

/* Every frame type of PROTOCOL.md §4, both directions: a record's type index picks one.
 * Server-to-client types are here on purpose (a client sending one is a protocol error).
 * A new frame type is added here (docs/ARCHITECTURE.md, "Adding a request type"). */
static const uint32_t fuzz_types[] = {
    FT_HELLO,
    FT_HELLO_ACK,
    FT_BYE,
    FT_LOGIN,
    FT_LOGIN_ACK,
    FT_LOGOUT,
    FT_LOGOUT_ACK,
    FT_PING,
    FT_PONG,
    FT_SEND,
    FT_SEND_ACK,
    FT_PUSH,
    FT_PUSH_ACK,
    FT_SYNC,
    FT_SYNC_ACK,
    FT_RECALL,
    FT_RECALL_ACK,
    FT_CONV_LIST,
    FT_CONV_LIST_ACK,
    FT_HISTORY,
    FT_HISTORY_ACK,
    FT_READ,
    FT_READ_ACK,
    FT_EVENT,
    FT_GROUP_CREATE,
    FT_GROUP_CREATE_ACK,
    FT_GROUP_JOIN,
    FT_GROUP_JOIN_ACK,
    FT_GROUP_LEAVE,
    FT_GROUP_LEAVE_ACK,
    FT_GROUP_ADD,
    FT_GROUP_ADD_ACK,
    FT_GROUP_KICK,
    FT_GROUP_KICK_ACK,
    FT_GROUP_DISMISS,
    FT_GROUP_DISMISS_ACK,
    FT_GROUP_MEMBERS,
    FT_GROUP_MEMBERS_ACK,
    FT_GROUP_LIST,
    FT_GROUP_LIST_ACK,
    FT_CONTACT_ADD,
    FT_CONTACT_ADD_ACK,
    FT_CONTACT_REMOVE,
    FT_CONTACT_REMOVE_ACK,
    FT_CONTACT_LIST,
    FT_CONTACT_LIST_ACK,
    FT_BLOCK,
    FT_BLOCK_ACK,
    FT_UNBLOCK,
    FT_UNBLOCK_ACK,
};
#define FUZZ_NTYPES (sizeof(fuzz_types) / sizeof(fuzz_types[0]))

enum { MODE_RAW = 0, MODE_LOGIN = 1, MODE_LIVE = 2, MODE_COUNT = 3 };

/* The client-to-server types of each request family (harness.h, fuzz_family_t). A new
 * request type goes into its family's list as well as into fuzz_types. */
static const uint32_t fam_auth[] = {FT_LOGIN, FT_LOGOUT, FT_PING};
static const uint32_t fam_msg[] = {FT_SEND, FT_PUSH_ACK, FT_SYNC};
static const uint32_t fam_conv[] = {
    FT_READ,           FT_RECALL,       FT_HISTORY, FT_CONV_LIST, FT_CONTACT_ADD,
    FT_CONTACT_REMOVE, FT_CONTACT_LIST, FT_BLOCK,   FT_UNBLOCK,
};
static const uint32_t fam_group[] = {
    FT_GROUP_CREATE, FT_GROUP_JOIN,    FT_GROUP_LEAVE,   FT_GROUP_ADD,
    FT_GROUP_KICK,   FT_GROUP_DISMISS, FT_GROUP_MEMBERS, FT_GROUP_LIST,
};

#define FAM(list) list, sizeof(list) / sizeof((list)[0])

static const struct family {
    const char *name;
    const uint32_t *types; /* NULL: fuzz_types, raw types allowed */
    size_t ntypes;
    unsigned modes; /* bit per mode allowed; the lowest is the default */
} families[FUZZ_FAM_COUNT] = {
    [FUZZ_FAM_ALL] = {"session", NULL, 0, 1u << MODE_RAW | 1u << MODE_LOGIN | 1u << MODE_LIVE},
    [FUZZ_FAM_HELLO] = {"handshake", NULL, 0, 1u << MODE_RAW},
    [FUZZ_FAM_AUTH] = {"auth", FAM(fam_auth), 1u << MODE_LOGIN | 1u << MODE_LIVE},
    [FUZZ_FAM_MSG] = {"msg", FAM(fam_msg), 1u << MODE_LIVE},
    [FUZZ_FAM_CONV] = {"conv", FAM(fam_conv), 1u << MODE_LIVE},
    [FUZZ_FAM_GROUP] = {"group", FAM(fam_group), 1u << MODE_LIVE},
};

/* Record control word (harness.h). */
#define CTL_TYPE_MASK    0x07ffu
#define CTL_RAW_TYPE     0x0800u
#define CTL_ACTION_SHIFT 12
#define CTL_SPLIT        0x4000u
#define CTL_BYTEWISE     0x8000u
enum { ACT_SEAL = 0, ACT_TAMPER = 1, ACT_RAW = 2, ACT_REPLAY = 3 };

#define REC_HDR        4
#define LOOP_TURNS_MAX 100 /* loop turns a closing session may take to be freed */

/* The whole harness state: one thread, one context per process (harness.h). */
typedef struct fuzz {
    bool ready;
    bool atexit_set;
    char dir[64]; /* the temp data directory */
    conf_t conf;
    server_t srv;
    worker_t *w;           /* srv.workers[0] */
    chan_ctx_t *cc;        /* the client side's cipher contexts */
    char token[TOKEN_MAX]; /* FUZZ_USER's token for app "default" */
    uint8_t *buf, *copy;   /* a frame being fed and its copy (replays); buf_len each */
    size_t buf_len;
    uint64_t txnid;         /* LMDB's last transaction id right after the last reset */
    uint32_t login_max_len; /* a session's frame limit right after the handshake */
    /* Per input. */
    const struct family *fam;
    const uint8_t *hello; /* mode 0: the body of the input's first frame, if a HELLO */
    size_t hello_len;
    bool saw_hello_ack; /* mode 0: the server's first frame was checked */
    bool in_setup;      /* mode 2: the setup requests are being answered */
    uint32_t setup_ok;  /* mode 2 setup: answers with code OK seen */
    uint64_t sid;       /* the input's session */
    int peer_fd;        /* the harness's end of the socketpair */
    bool check_out;     /* verify what the server writes (modes 1 and 2) */
    bool slow;          /* a reader that reads nothing until the input's end */
    bool saw_last;      /* BYE or LOGOUT_ACK seen: nothing may follow */
    chan_t cli;         /* the client's channel, mirroring the session's */
    frame_rd_t out_rd;  /* reassembles the server's frames */
} fuzz_t;

static fuzz_t fz = {.peer_fd = -1};

static __attribute__((format(printf, 1, 2), noreturn)) void fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "fuzz_%s: ", fz.fam != NULL ? fz.fam->name : "session");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    fflush(stderr);
    abort();
}

/* ---- setup and teardown ------------------------------------------------------------ */

/* Remove the temp data directory (flat: data.mdb, lock.mdb). Best effort. */
static void remove_dir(const char *dir)
{
    char path[sizeof(fz.dir) + 300];
    struct dirent *e;
    DIR *d = opendir(dir);

    if (d != NULL) {
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            (void)unlink(path); /* best effort: a leftover file only costs /tmp space */
        }
        closedir(d);
    }
    (void)rmdir(dir); /* best effort, as above */
}

/* App "default" with the fixed secret and the users FUZZ_USER and FUZZ_PEER. */
static int seed(kv_txn_t *txn)
{
    uint8_t secret[TOKEN_SECRET];
    int rc;

    memset(secret, FUZZ_SECRET_BYTE, sizeof(secret));
    if ((rc = kv_app_add(txn, "default", secret, 0)) < 0)
        return rc;
    if ((rc = kv_user_add(txn, "default", FUZZ_USER, 0)) < 0)
        return rc;
    return kv_user_add(txn, "default", FUZZ_PEER, 0);
}

#define DB_NAMES_MAX 64 /* named databases the reset can handle (kv has 15) */

/* Empty every named database of the environment (found through LMDB's main database, so
 * a database added to kv later is emptied too), keeping meta's schema record, which
 * kv_open checks; then seed() again. One write transaction; the store must be stopped. */
static int refill_db(kv_t *kv)
{
    static const char schema_key[] = "schema";
    char names[DB_NAMES_MAX][64], *name;
    uint8_t schema[64];
    size_t nnames = 0, schema_len = 0;
    kv_txn_t *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_dbi main_dbi, dbi;
    MDB_val k, v;
    MDB_txn *t;
    int mrc, rc;

    if ((rc = kv_begin(kv, KV_WRITE, &txn)) < 0)
        goto out;
    t = kv__txn(txn);
    if ((rc = kv__rc(mdb_dbi_open(t, NULL, 0, &main_dbi), "fuzz: main db")) < 0 ||
        (rc = kv__rc(mdb_cursor_open(t, main_dbi, &cur), "fuzz: cursor")) < 0)
        goto out;
    /* Names first, drops after: the main database is not walked while it may change. */
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (nnames == DB_NAMES_MAX || k.mv_size >= sizeof(names[0]))
            fail("more named databases than the reset knows (%zu)", nnames);
        memcpy(names[nnames], k.mv_data, k.mv_size);
        names[nnames++][k.mv_size] = '\0';
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if (mrc != MDB_NOTFOUND) {
        rc = kv__rc(mrc, "fuzz: listing databases");
        goto out;
    }
    for (size_t i = 0; i < nnames; i++) {
        name = names[i];
        if ((rc = kv__rc(mdb_dbi_open(t, name, 0, &dbi), "fuzz: opening a database")) < 0)
            goto out;
        if (strcmp(name, "meta") == 0) {
            k.mv_size = sizeof(schema_key) - 1;
            k.mv_data = (void *)schema_key;
            if ((rc = kv__rc(mdb_get(t, dbi, &k, &v), "fuzz: schema")) < 0)
                goto out;
            if (v.mv_size > sizeof(schema))
                fail("meta's schema record has %zu bytes", v.mv_size);
            schema_len = v.mv_size;
            memcpy(schema, v.mv_data, schema_len);
        }
        if ((rc = kv__rc(mdb_drop(t, dbi, 0), "fuzz: emptying a database")) < 0)
            goto out;
        if (strcmp(name, "meta") == 0) {
            v.mv_size = schema_len;
            v.mv_data = schema;
            if ((rc = kv__rc(mdb_put(t, dbi, &k, &v, 0), "fuzz: schema")) < 0)
                goto out;
        }
    }
    if (schema_len == 0)
        fail("no meta database with a schema record");
    if ((rc = seed(txn)) < 0)
        goto out;
    rc = kv_commit(txn);
    txn = NULL; /* commit frees the txn even when it fails */
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    kv_abort(txn);
    return rc;
}

/* LMDB's id of the last committed write transaction: unchanged means nothing written. */
static uint64_t last_txnid(kv_t *kv)
{
    MDB_envinfo info;

    if (mdb_env_info(kv->env, &info) != 0)
        fail("mdb_env_info failed");
    return info.me_last_txnid;
}

/* The seed before the store runs (it is then the only writer). */
static int seed_db(kv_t *kv)
{
    kv_txn_t *txn = NULL;
    int rc;

    if ((rc = kv_begin(kv, KV_WRITE, &txn)) < 0)
        goto out;
    if ((rc = seed(txn)) < 0)
        goto out;
    rc = kv_commit(txn);
    txn = NULL; /* commit frees the txn even when it fails */
out:
    kv_abort(txn);
    return rc;
}

/* After an input: stop the store (it commits what is queued and joins its thread), let
 * the worker release the completions it posted (their sessions are gone), and when
 * anything was committed since the last reset, empty the data and seed it again; then
 * start a new store, whose ids and counters start from that data. */
static void reset_data(void)
{
    server_t *srv = &fz.srv;
    int rc;

    store_stop(srv->store);
    for (int i = 0; i < 3; i++)
        uv_run(&fz.w->loop, UV_RUN_NOWAIT);
    store_free(srv->store);
    srv->store = NULL;
    if (last_txnid(srv->kv) != fz.txnid) {
        if ((rc = refill_db(srv->kv)) < 0)
            fail("resetting the database: %s", rc_str(rc));
        fz.txnid = last_txnid(srv->kv);
    }
    srv->store = store_new(srv);
    if ((rc = store_start(srv->store)) < 0)
        fail("store_start: %s", rc_str(rc));
}

static void cleanup_at_exit(void)
{
    (void)fuzz_session_cleanup(); /* best effort: the process is ending */
}

static void build_context(void)
{
    uint8_t secret[TOKEN_SECRET];
    server_t *srv = &fz.srv;
    const char *dbg = getenv("CIM_FUZZ_DEBUG");
    int rc;

    /* libuv does not ignore SIGPIPE, and neither does cimd's wiring for this process. */
    signal(SIGPIPE, SIG_IGN);
    log_set_level(dbg != NULL && dbg[0] != '\0' ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
    if ((rc = chan_global_init()) < 0)
        fail("chan_global_init: %s", rc_str(rc));

    conf_defaults(&fz.conf);
    snprintf(fz.dir, sizeof(fz.dir), "/tmp/cim-fuzz-XXXXXX");
    if (mkdtemp(fz.dir) == NULL)
        fail("mkdtemp: %s", strerror(errno));
    snprintf(fz.conf.data, sizeof(fz.conf.data), "%s", fz.dir);
    snprintf(fz.conf.listen, sizeof(fz.conf.listen), "127.0.0.1:0");
    /* No WebSocket or admin listener: the harness drives sessions directly, and fixed
     * ports would collide between runs. */
    snprintf(fz.conf.ws_listen, sizeof(fz.conf.ws_listen), "off");
    snprintf(fz.conf.admin_listen, sizeof(fz.conf.admin_listen), "off");
    fz.conf.workers = 1;
    fz.conf.durability = CONF_DURABILITY_NOSYNC;

    memset(srv, 0, sizeof(*srv));
    srv->conf = &fz.conf;
    if ((rc = kv_open(fz.dir, KV_NOSYNC, &srv->kv)) < 0)
        fail("kv_open %s: %s", fz.dir, rc_str(rc));
    if ((rc = seed_db(srv->kv)) < 0)
        fail("registering the fuzz app and user: %s", rc_str(rc));
    if ((rc = kv_app_ensure_default(srv->kv)) < 0) /* a no-op now, as on a restart */
        fail("kv_app_ensure_default: %s", rc_str(rc));
    srv->identity = chan_identity_generate();
    chan_identity_public(srv->identity, srv->identity_pub);
    srv->router = router_new();
    srv->cluster = cluster_new(&fz.conf); /* standalone: a plain struct, never started */
    /* The store sizes its per-worker outboxes at start: the workers exist first. */
    srv->nworkers = 1;
    srv->workers = mem_calloc(sizeof(*srv->workers));
    srv->workers[0] = fz.w = worker_new(srv, 0);
    if ((rc = worker_open(fz.w)) < 0)
        fail("worker_open: %s", rc_str(rc));
    fz.txnid = last_txnid(srv->kv);
    srv->store = store_new(srv);
    if ((rc = store_start(srv->store)) < 0)
        fail("store_start: %s", rc_str(rc));
    if ((rc = acceptor_start(srv, &fz.w->loop, &srv->acceptor)) < 0)
        fail("acceptor_start: %s", rc_str(rc));

    fz.cc = chan_ctx_new();
    memset(secret, FUZZ_SECRET_BYTE, sizeof(secret));
    if ((rc = token_mint(secret, "default", FUZZ_USER, FUZZ_TOKEN_EXPIRY, fz.token,
                         sizeof(fz.token))) < 0)
        fail("token_mint: %s", rc_str(rc));
    /* The longest frame a record can make: a u16 length of plaintext, sealed. */
    fz.buf_len = FRAME_HDR + UINT16_MAX + FRAME_TAG;
    fz.buf = mem_alloc(fz.buf_len);
    fz.copy = mem_alloc(fz.buf_len);
    if (!fz.atexit_set) {
        if (atexit(cleanup_at_exit) != 0)
            fail("atexit failed");
        fz.atexit_set = true;
    }
    fz.ready = true;
}

int fuzz_session_cleanup(void)
{
    server_t *srv = &fz.srv;
    worker_msg_t *m;
    int rc = 0;

    if (!fz.ready)
        return 0;
    fz.ready = false;
    /* The worker's own shutdown path closes its sweep timer and mailbox (it has no
     * sessions left); the acceptor goes after it, as in server_run. */
    m = mem_calloc(sizeof(*m));
    m->kind = WORKER_MSG_STOP;
    if (worker_post(fz.w, m, true) != 0)
        mem_free(m);
    uv_run(&fz.w->loop, UV_RUN_NOWAIT);
    acceptor_close(srv->acceptor);
    srv->acceptor = NULL;
    uv_run(&fz.w->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&fz.w->loop) != 0) {
        fprintf(stderr, "fuzz_session: the worker's loop did not close cleanly\n");
        rc = RC_EINVAL;
    }
    /* The store may still complete requests for the worker: stop it before the worker's
     * memory goes (its completions to the closed mailbox are released), as server.c does. */
    store_stop(srv->store);
    worker_free(fz.w);
    fz.w = NULL;
    mem_free(srv->workers);
    store_free(srv->store);
    router_free(srv->router);
    cluster_free(srv->cluster);
    chan_identity_free(srv->identity);
    kv_close(srv->kv);
    memset(srv, 0, sizeof(*srv));
    chan_ctx_free(fz.cc);
    fz.cc = NULL;
    mem_free(fz.buf);
    mem_free(fz.copy);
    fz.buf = fz.copy = NULL;
    remove_dir(fz.dir);
    chan_global_free();
    return rc;
}

/* ---- the server's output ----------------------------------------------------------- */

/* Mode 2 setup: every answer to the harness's own requests must say OK. */
static void check_setup_answer(uint32_t type, const uint8_t *body, size_t len)
{
    cim_Result r = cim_Result_init_zero; /* SendRsp and GroupRsp start as Result does */
    pb_istream_t is = pb_istream_from_buffer(body, len);

    if (type != FT_GROUP_CREATE_ACK && type != FT_SEND_ACK)
        return; /* pushes and events of the setup's messages */
    if (!pb_decode(&is, cim_Result_fields, &r))
        fail("setup: undecodable %s", frame_type_name(type));
    if (r.code != cim_Code_OK)
        fail("setup: %s req_id %u answered code %d (%s): the reset left state behind?",
             frame_type_name(type), r.req_id, (int)r.code, r.reason);
    fz.setup_ok++;
}

static int on_out_frame(void *ctx, uint32_t type, uint8_t *frame, uint32_t len)
{
    (void)ctx;
    if (fz.saw_last)
        fail("server wrote %s after BYE or LOGOUT_ACK", frame_type_name(type));
    if (frame_type_from_client(type))
        fail("server wrote a client-to-server frame type 0x%04x", type);
    if (chan_open(fz.cc, &fz.cli, frame, len) < 0)
        fail("server frame %s (%u bytes, counter %llu) does not open with the session key",
             frame_type_name(type), len, (unsigned long long)fz.cli.rx_ctr);
    if (type == FT_BYE || type == FT_LOGOUT_ACK)
        fz.saw_last = true;
    if (fz.in_setup)
        check_setup_answer(type, frame + FRAME_HDR, len - FRAME_HDR - FRAME_TAG);
    return 0;
}

/* Mode 0: the server's first frame, when it writes one, must be a HELLO_ACK that a client
 * accepts for exactly the HELLO body the input started with (pinned to the server's
 * identity). Later frames are sealed with keys the harness cannot know: not checked. */
static int on_raw_out_frame(void *ctx, uint32_t type, uint8_t *frame, uint32_t len)
{
    cim_ServerHello sh = cim_ServerHello_init_zero;
    pb_istream_t is = pb_istream_from_buffer(frame + FRAME_HDR, len - FRAME_HDR);
    chan_client_t cl = {0};
    chan_t ch;
    int rc;

    (void)ctx;
    if (fz.saw_hello_ack)
        return 0;
    fz.saw_hello_ack = true;
    if (type != FT_HELLO_ACK)
        fail("mode 0: the server's first frame is %s, not HELLO_ACK", frame_type_name(type));
    if (fz.hello == NULL)
        fail("mode 0: HELLO_ACK to an input that does not start with a whole HELLO frame");
    if (!pb_decode(&is, cim_ServerHello_fields, &sh) || sh.version != 1 ||
        sh.server_key.size != CHAN_KEY || sh.server_random.size != CHAN_RANDOM ||
        sh.identity.size != CHAN_KEY || sh.signature.size != CHAN_SIG)
        fail("mode 0: malformed HELLO_ACK (%u bytes)", len);
    if ((rc = chan_client_start(&cl)) < 0)
        fail("chan_client_start: %s", rc_str(rc));
    rc =
        chan_client_finish(&cl, fz.hello, fz.hello_len, sh.server_key.bytes, sh.server_random.bytes,
                           sh.identity.bytes, sh.signature.bytes, fz.srv.identity_pub, &ch);
    chan_client_close(&cl);
    if (rc < 0)
        fail("mode 0: the HELLO_ACK does not verify for the HELLO sent: %s", rc_str(rc));
    return 0;
}

/* Read (and check: modes 1 and 2 every frame, mode 0 the first) everything the server has
 * written so far. */
static void drain(void)
{
    uint8_t tmp[16384];
    ssize_t n;
    int rc;

    while ((n = read(fz.peer_fd, tmp, sizeof(tmp))) > 0) {
        rc = frame_rd_feed(&fz.out_rd, tmp, (size_t)n, FRAME_HDR + fz.conf.max_body + FRAME_TAG,
                           fz.check_out ? on_out_frame : on_raw_out_frame, NULL);
        if (rc < 0)
            fail("server wrote a malformed frame: %s", rc_str(rc));
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNRESET)
        fail("reading the server's output: %s", strerror(errno));
}

/* One loop turn: write what the server queued, run callbacks, read what it wrote (unless
 * the reader is slow: then the server's socket fills and its writes queue in libuv). */
static void turn(void)
{
    if (!fz.slow)
        drain();
    uv_run(&fz.w->loop, UV_RUN_NOWAIT);
    if (!fz.slow)
        drain();
}

/* The input's session, or NULL once its close callback has freed it. */
static session_t *cur(void)
{
    return worker_find(fz.w, fz.sid);
}

static bool open_for_input(const session_t *s)
{
    return s != NULL && !s->closed && s->state != SESSION_ST_CLOSING;
}

/* ---- feeding ----------------------------------------------------------------------- */

/* Feed @p n bytes of @p p (mutable: frames are opened in place) as @p how directs. The
 * session cannot be freed without a loop turn, so @p s stays valid throughout. */
static void feed(session_t *s, uint8_t *p, size_t n, unsigned how)
{
    if (how & CTL_BYTEWISE) {
        for (size_t i = 0; i < n; i++)
            session_feed(s, p + i, 1);
    } else if (how & CTL_SPLIT) {
        session_feed(s, p, n / 2);
        session_feed(s, p + n / 2, n - n / 2);
    } else {
        session_feed(s, p, n);
    }
}

/* Mode 0: note the body of the stream's first frame when it is a whole HELLO that the
 * HELLO state accepts (the server's answer is checked against it). */
static void find_hello(const uint8_t *p, size_t n)
{
    uint32_t len, type;

    fz.hello = NULL;
    fz.hello_len = 0;
    if (n < FRAME_HDR)
        return;
    frame_hdr_read(p, &len, &type);
    if (type == FT_HELLO && len >= FRAME_HDR && len <= FRAME_HANDSHAKE_MAX && len <= n) {
        fz.hello = p + FRAME_HDR;
        fz.hello_len = len - FRAME_HDR;
    }
}

static void play_raw(const uint8_t *p, size_t n)
{
    size_t chunk = p[0] ? p[0] : fz.buf_len;

    p++;
    n--;
    find_hello(p, n);
    while (n > 0) {
        session_t *s = cur();
        size_t k = n < chunk ? n : chunk;
        if (!open_for_input(s))
            return;
        memcpy(fz.buf, p, k);
        session_feed(s, fz.buf, k);
        p += k;
        n -= k;
        if (!fz.slow)
            drain();
    }
}

/* Seal @p len bytes as frame @p type with the client's channel into fz.buf. */
static size_t seal(uint32_t type, const uint8_t *pt, size_t len)
{
    int rc = chan_seal(fz.cc, &fz.cli, type, pt, len, fz.buf);
    if (rc < 0)
        fail("chan_seal: %s", rc_str(rc));
    return FRAME_HDR + len + FRAME_TAG;
}

/* A record's frame type (harness.h: ctl bits 0..11), within the input's family. */
static uint32_t pick_type(unsigned ctl)
{
    const struct family *f = fz.fam;
    uint32_t v = ctl & CTL_TYPE_MASK;

    if (f->types == NULL)
        return ctl & CTL_RAW_TYPE ? v : fuzz_types[v % FUZZ_NTYPES];
    if (ctl & CTL_RAW_TYPE)
        for (size_t i = 0; i < f->ntypes; i++)
            if (f->types[i] == v)
                return v;
    return f->types[v % f->ntypes];
}

static void play_records(const uint8_t *p, size_t n)
{
    while (n > 0) {
        session_t *s = cur();
        unsigned ctl, action;
        uint32_t type;
        size_t len, flen;

        if (!open_for_input(s))
            return;
        if (n < REC_HDR) { /* not even a record header: the bytes go in as they are */
            memcpy(fz.buf, p, n);
            session_feed(s, fz.buf, n);
            break;
        }
        ctl = (unsigned)p[0] << 8 | p[1];
        len = (size_t)p[2] << 8 | p[3];
        p += REC_HDR;
        n -= REC_HDR;
        if (len > n)
            len = n;
        type = pick_type(ctl);
        action = (ctl >> CTL_ACTION_SHIFT) & 3;
        if (action == ACT_RAW) {
            memcpy(fz.buf, p, len);
            flen = len;
        } else {
            flen = seal(type, p, len);
        }
        if (action == ACT_TAMPER)
            fz.buf[(len + (ctl & CTL_TYPE_MASK)) % flen] ^= (uint8_t)(1u << (ctl & 7));
        if (action == ACT_REPLAY)
            memcpy(fz.copy, fz.buf, flen);
        feed(s, fz.buf, flen, ctl);
        if (action == ACT_REPLAY)
            feed(s, fz.copy, flen, ctl); /* same pointer: no loop turn in between */
        p += len;
        n -= len;
        turn();
    }
    turn();
}

/* Mode 2: the fixed, valid LOGIN; the session must be LIVE afterwards. */
static void login(void)
{
    cim_LoginReq req = cim_LoginReq_init_zero;
    uint8_t pt[1024];
    pb_ostream_t os = pb_ostream_from_buffer(pt, sizeof(pt));
    session_t *s = cur();

    req.req_id = 1;
    snprintf(req.user, sizeof(req.user), "%s", FUZZ_USER);
    snprintf(req.token, sizeof(req.token), "%s", fz.token);
    snprintf(req.device_id, sizeof(req.device_id), "%s", FUZZ_DEVICE);
    req.device_kind = cim_DeviceKind_DESKTOP;
    snprintf(req.client_version, sizeof(req.client_version), "fuzz");
    if (!pb_encode(&os, cim_LoginReq_fields, &req))
        fail("encoding the LoginReq: %s", PB_GET_ERROR(&os));
    session_feed(s, fz.buf, seal(FT_LOGIN, pt, os.bytes_written));
    turn();
    s = cur();
    if (s == NULL || s->state != SESSION_ST_LIVE)
        fail("mode 2: the fixed LOGIN did not bring the session to LIVE");
}

/* Mode 2 with the setup bit: a group and two messages (harness.h), each answered OK. */
#define SETUP_TURNS_MAX 100 /* blocking loop turns (the sweep timer ends one in 100 ms) */

static bool encode_text(pb_ostream_t *os, const pb_field_t *f, void *const *arg)
{
    const char *text = *arg;
    return pb_encode_tag_for_field(os, f) &&
           pb_encode_string(os, (const pb_byte_t *)text, strlen(text));
}

/* Seal and feed one request, then turn the loop until its answer (from the store) is in. */
static void setup_request(uint32_t type, const pb_msgdesc_t *fields, const void *msg)
{
    uint8_t pt[512];
    pb_ostream_t os = pb_ostream_from_buffer(pt, sizeof(pt));
    uint32_t want = fz.setup_ok + 1;
    session_t *s = cur();

    if (s == NULL || !pb_encode(&os, fields, msg))
        fail("setup: cannot send %s", frame_type_name(type));
    session_feed(s, fz.buf, seal(type, pt, os.bytes_written));
    for (int i = 0; fz.setup_ok < want; i++) {
        if (i == SETUP_TURNS_MAX || cur() == NULL)
            fail("setup: %s not answered", frame_type_name(type));
        uv_run(&fz.w->loop, UV_RUN_ONCE);
        drain();
    }
}

static void setup_send(uint32_t req_id, const char *cmid, cim_ConvType conv, const char *to)
{
    cim_SendReq req = cim_SendReq_init_zero;

    req.req_id = req_id;
    snprintf(req.client_msg_id, sizeof(req.client_msg_id), "%s", cmid);
    req.conv_type = conv;
    snprintf(req.to, sizeof(req.to), "%s", to);
    req.msg_type = cim_MsgType_TEXT;
    req.body.funcs.encode = encode_text;
    req.body.arg = (void *)(uintptr_t) "setup";
    setup_request(FT_SEND, cim_SendReq_fields, &req);
}

static void setup(void)
{
    static cim_GroupCreateReq gc; /* 65 KB: not on the stack */

    memset(&gc, 0, sizeof(gc));
    gc.req_id = 60001;
    snprintf(gc.name, sizeof(gc.name), "setup");
    gc.members_count = 1;
    snprintf(gc.members[0], sizeof(gc.members[0]), "%s", FUZZ_PEER);
    gc.open = true;
    fz.in_setup = true;
    setup_request(FT_GROUP_CREATE, cim_GroupCreateReq_fields, &gc);
    setup_send(60002, "setup-direct", cim_ConvType_DIRECT, FUZZ_PEER);
    setup_send(60003, "setup-group", cim_ConvType_GROUP, FUZZ_GROUP);
    fz.in_setup = false;
}

/* ---- one input --------------------------------------------------------------------- */

/* Adopt one end of a new socketpair as an accepted connection. */
static session_t *open_session(void)
{
    peer_addr_t peer = {.ip = {127, 0, 0, 1}, .family = 4};
    session_t *s;
    int sv[2], rc;

    if (fz.w->nsessions != 0)
        fail("a session of the previous input is still open");
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        fail("socketpair: %s", strerror(errno));
    /* A slow reader: the smallest send buffer the kernel allows (a few KiB), so that a
     * few answers fill it and the rest takes libuv's write queue (queue_bytes, on_write). */
    if (fz.slow && setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &(int){1}, sizeof(int)) < 0)
        fail("setsockopt SO_SNDBUF: %s", strerror(errno));
    if ((rc = session_open(fz.w, sv[0], &peer)) < 0) /* sv[0] is the session's even so */
        fail("session_open: %s", rc_str(rc));
    s = fz.w->pending.tail; /* session_open appends the new session to pending */
    if (s == NULL || fz.w->nsessions != 1)
        fail("session_open left no pending session");
    fz.sid = s->sid;
    fz.peer_fd = sv[1];
    return s;
}

/* Put @p s where session__hello leaves it, with the fixed keys mirrored in fz.cli. */
static void skip_handshake(session_t *s)
{
    memset(&s->ch, 0, sizeof(s->ch));
    memset(s->ch.rx_key, FUZZ_KEY_C2S_BYTE, CHAN_KEY);
    memset(s->ch.tx_key, FUZZ_KEY_S2C_BYTE, CHAN_KEY);
    s->state = SESSION_ST_LOGIN;
    s->max_len = fz.login_max_len;

    memset(&fz.cli, 0, sizeof(fz.cli));
    memset(fz.cli.tx_key, FUZZ_KEY_C2S_BYTE, CHAN_KEY);
    memset(fz.cli.rx_key, FUZZ_KEY_S2C_BYTE, CHAN_KEY);
}

static void finish(void);

/* A session's frame limit right after a real handshake (session__hello sets it; modes 1
 * and 2 start there): learnt by doing one handshake, whose HELLO_ACK is checked too. */
static uint32_t learn_login_limit(void)
{
    cim_ClientHello h = cim_ClientHello_init_zero;
    uint8_t body[128];
    pb_ostream_t os = pb_ostream_from_buffer(body, sizeof(body));
    chan_client_t cl = {0};
    session_t *s;
    uint32_t limit;
    int rc;

    if ((rc = chan_client_start(&cl)) < 0)
        fail("chan_client_start: %s", rc_str(rc));
    h.version = 1;
    h.client_key.size = CHAN_KEY;
    memcpy(h.client_key.bytes, cl.key, CHAN_KEY);
    h.client_random.size = CHAN_RANDOM;
    memcpy(h.client_random.bytes, cl.random, CHAN_RANDOM);
    if (!pb_encode(&os, cim_ClientHello_fields, &h))
        fail("encoding a ClientHello: %s", PB_GET_ERROR(&os));
    fz.slow = false;
    fz.check_out = false;
    fz.saw_hello_ack = false;
    fz.hello = body;
    fz.hello_len = os.bytes_written;
    frame_rd_init(&fz.out_rd);
    s = open_session();
    frame_hdr_write(fz.buf, (uint32_t)(FRAME_HDR + os.bytes_written), FT_HELLO);
    memcpy(fz.buf + FRAME_HDR, body, os.bytes_written);
    session_feed(s, fz.buf, FRAME_HDR + os.bytes_written);
    turn();
    s = cur();
    if (s == NULL || s->state != SESSION_ST_LOGIN || !fz.saw_hello_ack)
        fail("setup: a real handshake did not complete");
    limit = s->max_len;
    chan_client_close(&cl);
    finish();
    fz.hello = NULL;
    return limit;
}

/* End the input as a client would: read what is left (the server flushes its queue and
 * completes a graceful close), then hang up (the read callback sees EOF); abort the session
 * only if it is still there, and turn the loop until it is freed. */
static void finish(void)
{
    session_t *s;
    int i;

    fz.slow = false;
    for (i = 0; i < 3 && cur() != NULL; i++)
        turn();
    if (cur() != NULL) {
        if (shutdown(fz.peer_fd, SHUT_WR) < 0)
            fail("shutdown: %s", strerror(errno));
        turn();
    }
    if ((s = cur()) != NULL)
        session_abort(s, "end of the fuzz input");
    for (i = 0; fz.w->nsessions > 0; i++) {
        if (i == LOOP_TURNS_MAX)
            fail("the session was not freed after %d loop turns", LOOP_TURNS_MAX);
        turn();
    }
    drain();
    close(fz.peer_fd);
    fz.peer_fd = -1;
    frame_rd_close(&fz.out_rd);
    uv_run(&fz.w->loop, UV_RUN_NOWAIT); /* the acceptor's count of closed connections */
}

int fuzz_family_input(int family, const uint8_t *data, size_t size)
{
    session_t *s;
    bool with_setup;
    int mode;

    if (family < 0 || family >= FUZZ_FAM_COUNT)
        fail("unknown family %d", family);
    if (size < 2)
        return 0;
    if (!fz.ready) {
        build_context();
        fz.login_max_len = learn_login_limit();
    }
    fz.fam = &families[family];
    mode = data[0] % MODE_COUNT;
    if (!(fz.fam->modes & 1u << mode))
        mode = __builtin_ctz(fz.fam->modes);
    fz.slow = (data[0] / MODE_COUNT) & 1;
    with_setup = (data[0] / (2 * MODE_COUNT)) & 1;
    s = open_session();
    fz.check_out = mode != MODE_RAW;
    fz.saw_last = false;
    fz.saw_hello_ack = false;
    fz.in_setup = false;
    fz.setup_ok = 0;
    frame_rd_init(&fz.out_rd);
    if (mode == MODE_RAW) {
        play_raw(data + 1, size - 1);
    } else {
        skip_handshake(s);
        if (mode == MODE_LIVE) {
            login();
            if (with_setup)
                setup();
        }
        play_records(data + 1, size - 1);
    }
    finish();
    fz.hello = NULL;
    /* Mode 0 never reaches the store: its keys are random, so no sealed frame opens and
     * the session never leaves the handshake's states. What it costs (a thread start and
     * stop, ~0.4 ms under ASan) would be most of a mode-0 input's time. */
    if (mode != MODE_RAW)
        reset_data();
    else if (last_txnid(fz.srv.kv) != fz.txnid)
        fail("mode 0: the input wrote to the database");
    return 0;
}

int fuzz_session_input(const uint8_t *data, size_t size)
{
    return fuzz_family_input(FUZZ_FAM_ALL, data, size);
}
