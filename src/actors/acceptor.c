#include "actors/acceptor.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "actors/worker.h"
#include "core/log.h"
#include "core/mbox.h"
#include "core/mem.h"
#include "core/rc.h"

#define PEER_BUCKETS 4096
/* Descriptors kept for everything but client connections once the server runs (files,
 * a few per loop, what later features open), on top of those open at start. */
#define FD_HEADROOM 64
/* How long accepting pauses when the process is out of descriptors and the reserve one
 * could not be used: long enough not to spin, short enough to notice freed ones. */
#define ACCEPT_PAUSE_MS 100

/* Connections per peer address: a small chained hash, touched only by this thread. */
typedef struct peer_count {
    struct peer_count *next;
    peer_addr_t addr;
    uint32_t n;
} peer_count_t;

typedef struct closed_msg {
    mbox_node_t node;
    peer_addr_t peer;
} closed_msg_t;

/* A listening socket: the protocol over TCP, or the WebSocket endpoint's HTTP. */
typedef struct listener {
    struct acceptor *a;
    int fd;
    bool ws;
    bool polling;       /* poll initialised (closed by acceptor_close) */
    uv_poll_t poll;
    char address[300];
} listener_t;

struct acceptor {
    server_t *srv;
    listener_t lis[2];  /* [0] listen, [1] ws_listen (fd -1: off) */
    uv_timer_t pause;   /* accepting paused: out of descriptors */
    int reserve;        /* a spare descriptor (/dev/null) given up to refuse one client */
    uint32_t max_conns; /* conf max_conns, lowered to what the descriptor limit allows */
    uint64_t refused_nofd; /* connections refused for want of a descriptor */
    mbox_t box;
    uint32_t next_worker;
    uint32_t conns;
    int open_handles;
    peer_count_t *peers[PEER_BUCKETS];
};

uint32_t peer_addr_hash(const peer_addr_t *p)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < (p->family == 4 ? 4 : 16); i++)
        h = (h ^ p->ip[i]) * 16777619u;
    return h ^ p->family;
}

static peer_count_t **peer_find(acceptor_t *a, const peer_addr_t *p)
{
    peer_count_t **pp = &a->peers[peer_addr_hash(p) % PEER_BUCKETS];
    for (; *pp != NULL; pp = &(*pp)->next)
        if (memcmp(&(*pp)->addr, p, sizeof(*p)) == 0)
            break;
    return pp;
}

static void peer_release(acceptor_t *a, const peer_addr_t *p)
{
    peer_count_t **pp = peer_find(a, p), *pc = *pp;
    if (pc != NULL && --pc->n == 0) {
        *pp = pc->next;
        mem_free(pc);
    }
    if (a->conns > 0)
        a->conns--;
}

void peer_addr_from(const struct sockaddr_storage *ss, peer_addr_t *p)
{
    memset(p, 0, sizeof(*p));
    if (ss->ss_family == AF_INET) {
        p->family = 4;
        memcpy(p->ip, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    } else {
        p->family = 6;
        memcpy(p->ip, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
    }
}

const char *peer_addr_str(const peer_addr_t *p, char out[PEER_ADDR_STRLEN])
{
    if (inet_ntop(p->family == 4 ? AF_INET : AF_INET6, p->ip, out, PEER_ADDR_STRLEN) == NULL)
        snprintf(out, PEER_ADDR_STRLEN, "?");
    return out;
}

/* Admit or refuse one accepted socket. Refused sockets are closed before any byte is
 * exchanged: the caps protect the handshake's CPU as much as memory. */
static void admit(acceptor_t *a, int fd, const struct sockaddr_storage *ss, bool ws)
{
    const conf_t *c = a->srv->conf;
    peer_addr_t peer;
    peer_count_t **pp, *pc;
    worker_msg_t *m;
    int one = 1;

    peer_addr_from(ss, &peer);
    pp = peer_find(a, &peer);
    pc = *pp;
    if (a->conns >= a->max_conns || (pc != NULL && pc->n >= c->max_conns_per_ip)) {
        char addr[PEER_ADDR_STRLEN];
        LOG_RL(LOG_LVL_WARN, "refusing connection from %s: %s cap reached",
               peer_addr_str(&peer, addr), a->conns >= a->max_conns ? "max_conns" : "max_conns_per_ip");
        close(fd);
        return;
    }
    if (pc == NULL) {
        pc = mem_calloc(sizeof(*pc));
        pc->addr = peer;
        *pp = pc;
    }
    pc->n++;
    a->conns++;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* best effort */

    m = mem_calloc(sizeof(*m));
    m->kind = WORKER_MSG_CONN;
    m->u.conn.fd = fd;
    m->u.conn.peer = peer;
    m->u.conn.ws = ws;
    if (worker_post(a->srv->workers[a->next_worker], m, true) != 0) {
        mem_free(m);
        close(fd);
        peer_release(a, &peer);
        return;
    }
    a->next_worker = (a->next_worker + 1) % a->srv->nworkers;
}

static void on_readable(uv_poll_t *h, int status, int events);

static void on_resume(uv_timer_t *t)
{
    acceptor_t *a = t->data;
    for (int i = 0; i < 2; i++)
        if (a->lis[i].polling)
            (void)uv_poll_start(&a->lis[i].poll, UV_READABLE, on_readable);
}

/* Out of descriptors (EMFILE/ENFILE). The listener stays readable, so returning would
 * wake the loop again at once and spin; instead, as mature servers do, give up the
 * reserve descriptor, accept the client and close it at once (it sees the connection
 * closed before the handshake, as over a cap), then take the reserve back. If even that
 * fails, stop polling the listener for ACCEPT_PAUSE_MS. @return true to keep accepting. */
static bool out_of_fds(acceptor_t *a, int lfd, int err)
{
    int fd;

    a->refused_nofd++;
    LOG_RL(LOG_LVL_WARN, "accept: %s: refusing connections until descriptors are freed "
           "(%llu refused so far; max_conns is %u)", strerror(err),
           (unsigned long long)a->refused_nofd, a->max_conns);
    if (a->reserve >= 0) {
        close(a->reserve);
        a->reserve = -1;
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            close(fd);
        a->reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && a->reserve >= 0)
            return true;
    } else {
        a->reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    for (int i = 0; i < 2; i++)
        if (a->lis[i].polling)
            (void)uv_poll_stop(&a->lis[i].poll);
    (void)uv_timer_start(&a->pause, on_resume, ACCEPT_PAUSE_MS, 0);
    return false;
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    listener_t *l = h->data;
    acceptor_t *a = l->a;
    (void)events;
    if (status < 0) {
        LOG_RL(LOG_LVL_WARN, "listener poll error: %s", uv_strerror(status));
        return;
    }
    /* Accept a bounded batch per wake-up so the loop also serves its mailbox. */
    for (int i = 0; i < 256; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                if (out_of_fds(a, l->fd, errno))
                    continue;
                return;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                LOG_RL(LOG_LVL_WARN, "accept: %s", strerror(errno));
            return;
        }
        admit(a, fd, &ss, l->ws);
    }
}

/* Descriptors open in this process now. */
static unsigned open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    unsigned n = 0;

    if (d == NULL)
        return FD_HEADROOM; /* no /proc: assume as many again */
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* max_conns may not exceed what the descriptor limit leaves for clients: raise the soft
 * limit to the hard one, then lower max_conns (saying so) to fit under it. */
static uint32_t fit_max_conns(uint32_t want)
{
    struct rlimit rl;
    uint64_t room, used;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return want;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t cur = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            rl.rlim_cur = cur;
    }
    if (rl.rlim_cur == RLIM_INFINITY)
        return want;
    used = open_fds() + FD_HEADROOM;
    room = rl.rlim_cur > used ? rl.rlim_cur - used : 1;
    if (want <= room)
        return want;
    LOG_WARN("max_conns %u lowered to %llu: the open-file limit is %llu descriptors "
             "(raise it with ulimit -n or LimitNOFILE= to allow more)",
             want, (unsigned long long)room, (unsigned long long)rl.rlim_cur);
    return (uint32_t)room;
}

static void on_wake(mbox_t *box)
{
    acceptor_t *a = box->data;
    mbox_node_t *n;
    while ((n = mbox_pop(box)) != NULL) {
        closed_msg_t *m = container_of(n, closed_msg_t, node);
        peer_release(a, &m->peer);
        mem_free(m);
    }
}

void acceptor_conn_closed(acceptor_t *a, const peer_addr_t *peer)
{
    closed_msg_t *m = mem_alloc(sizeof(*m));
    m->peer = *peer;
    if (mbox_send_force(&a->box, &m->node) != 0)
        mem_free(m); /* the acceptor is gone: nothing left to count */
}

static int parse_listen(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[256];
    int port;
    int rc = conf_addr_split(addr, host, sizeof(host), &port);

    if (rc < 0)
        return rc;
    memset(ss, 0, sizeof(*ss));
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (host[0] == '\0' || strcmp(host, "*") == 0)
        strcpy(host, "0.0.0.0");
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) {
        *len = sizeof(struct sockaddr_in);
        return 0;
    }
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) {
        *len = sizeof(struct sockaddr_in6);
        return 0;
    }
    LOG_ERROR("listen address '%s' is not an IP address (names are not resolved)", host);
    return RC_EINVAL;
}

/* Bind and listen on @p addr into @p l. @return 0 or rc (logged). */
static int listen_on(listener_t *l, const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char host[INET6_ADDRSTRLEN];
    int rc, one = 1;

    if ((rc = parse_listen(addr, &ss, &len)) < 0)
        return rc;
    l->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0)
        return -errno;
    (void)setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* best effort */
    if (bind(l->fd, (struct sockaddr *)&ss, len) < 0 || listen(l->fd, 4096) < 0) {
        rc = -errno;
        LOG_ERROR("cannot listen on %s: %s", addr, strerror(errno));
        return rc;
    }
    len = sizeof(ss);
    if (getsockname(l->fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
        snprintf(l->address, sizeof(l->address), "%s:%u", host,
                 ntohs(((struct sockaddr_in *)&ss)->sin_port));
    } else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
        snprintf(l->address, sizeof(l->address), "[%s]:%u", host,
                 ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    }
    return 0;
}

int acceptor_start(server_t *srv, uv_loop_t *loop, acceptor_t **out)
{
    acceptor_t *a = mem_calloc(sizeof(*a));
    bool ws = strcmp(srv->conf->ws_listen, "off") != 0;
    int rc;

    a->srv = srv;
    for (int i = 0; i < 2; i++) {
        a->lis[i].a = a;
        a->lis[i].fd = -1;
        a->lis[i].ws = i == 1;
    }
    a->reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
    a->max_conns = fit_max_conns(srv->conf->max_conns);
    if ((rc = listen_on(&a->lis[0], srv->conf->listen)) < 0 ||
        (ws && (rc = listen_on(&a->lis[1], srv->conf->ws_listen)) < 0))
        goto out;
    if ((rc = mbox_init(&a->box, loop, SIZE_MAX, on_wake)) < 0)
        goto out;
    a->box.data = a;
    a->open_handles = 1;
    if ((rc = uv_timer_init(loop, &a->pause)) < 0)
        goto out;
    a->open_handles++;
    a->pause.data = a;
    for (int i = 0; i < 2; i++) {
        listener_t *l = &a->lis[i];
        if (l->fd < 0)
            continue;
        if ((rc = uv_poll_init(loop, &l->poll, l->fd)) < 0)
            goto out;
        a->open_handles++;
        l->polling = true;
        l->poll.data = l;
        if ((rc = uv_poll_start(&l->poll, UV_READABLE, on_readable)) < 0)
            goto out;
    }
    *out = a;
    return 0;
out:
    if (a->open_handles > 0) {
        acceptor_close(a);
        return rc;
    }
    for (int i = 0; i < 2; i++)
        if (a->lis[i].fd >= 0)
            close(a->lis[i].fd);
    if (a->reserve >= 0)
        close(a->reserve);
    mem_free(a);
    return rc;
}

const char *acceptor_address(const acceptor_t *a)
{
    return a->lis[0].address;
}

const char *acceptor_ws_address(const acceptor_t *a)
{
    return a->lis[1].fd >= 0 ? a->lis[1].address : NULL;
}

static void release(acceptor_t *a)
{
    if (--a->open_handles > 0)
        return;
    on_wake(&a->box); /* free what raced in */
    for (int i = 0; i < PEER_BUCKETS; i++) {
        peer_count_t *p = a->peers[i], *next;
        for (; p != NULL; p = next) {
            next = p->next;
            mem_free(p);
        }
    }
    for (int i = 0; i < 2; i++)
        if (a->lis[i].fd >= 0)
            close(a->lis[i].fd);
    if (a->reserve >= 0)
        close(a->reserve);
    mem_free(a);
}

static void on_poll_closed(uv_handle_t *h)
{
    release(((listener_t *)h->data)->a);
}

static void on_pause_closed(uv_handle_t *h)
{
    release(h->data);
}

static void on_box_closed(uv_handle_t *h)
{
    release(container_of((uv_async_t *)h, mbox_t, async)->data);
}

void acceptor_close(acceptor_t *a)
{
    int n = a->open_handles;
    for (int i = 0; i < 2; i++) {
        if (a->lis[i].polling) {
            a->lis[i].polling = false;
            uv_poll_stop(&a->lis[i].poll);
            uv_close((uv_handle_t *)&a->lis[i].poll, on_poll_closed);
        }
    }
    if (n >= 2)
        uv_close((uv_handle_t *)&a->pause, on_pause_closed);
    if (n >= 1)
        mbox_close(&a->box, on_box_closed);
}
