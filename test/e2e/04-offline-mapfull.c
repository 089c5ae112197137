/* Integration: a full LMDB map is grown and the batch retried; nothing is lost. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "support/msg.h"
#include "support/server.h"
#include "support/test.h"

#define N 600
#define BODY 2000

typedef struct mk {
    uint8_t body[BODY];
} mk_t;

static void make(void *ctx, size_t i, char *cmid, size_t cap, const uint8_t **body,
                 size_t *len)
{
    mk_t *m = ctx;
    snprintf(cmid, cap, "grow-%zu", i);
    memset(m->body, 'a' + (int)(i % 26), BODY);
    *body = m->body;
    *len = BODY;
}

TEST_TIMEOUT(e2e_offline_map_full_grows, 60)
{
    tsrv_t t;
    mk_t m;
    static uint64_t ids[N];
    static tmsg_t got[N + 10];
    tmsg_page_t page;
    char out[8192];

    /* 256 KiB of map: the ~1.2 MB of messages below cannot fit without growing it. */
    setenv("CIM_KV_MAP_SIZE", "262144", 1);
    tsrv_start(&t, "--send_rate", "100000", "--send_burst", "100000", "--max_msg_bytes",
               "4000", NULL);
    unsetenv("CIM_KV_MAP_SIZE");
    cimc_t *b = tmsg_login(&t, "bob", "d1", cim_DeviceKind_MOBILE, NULL);
    cimc_close(b); /* bob exists, offline */
    cimc_t *a = tmsg_login(&t, "alice", "d1", cim_DeviceKind_MOBILE, NULL);
    ASSERT_OK(tmsg_send_many(a, "bob", N, 32, cim_MsgType_TEXT, make, &m, ids, NULL, NULL));
    for (size_t i = 0; i < N; i++)
        ASSERT_TRUE(ids[i] != 0);
    cimc_close(a);

    b = tmsg_login(&t, "bob", "d1", cim_DeviceKind_MOBILE, NULL);
    tmsg_page_init(&page, got, N + 10, NULL, 0);
    ASSERT_OK(tmsg_sync_all(b, 0, 0, &page));
    ASSERT_EQ(page.n, N);
    for (size_t i = 0; i < N; i++) {
        ASSERT_U64_EQ(got[i].msg_id, ids[i]);
        ASSERT_EQ(got[i].body_len, BODY);
    }
    cimc_close(b);
    /* the server said it grew the map */
    FILE *f = fopen(t.log, "r");
    size_t n = f ? fread(out, 1, sizeof(out) - 1, f) : 0;
    out[n] = '\0';
    if (f)
        fclose(f);
    ASSERT_NOT_NULL(strstr(out, "map grown"));
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* A cimctl that writes beside a running nosync cimd (which maps the data file writably)
 * must not cut the file below cimd's map: LMDB truncates the file to the map size when it
 * opens with MDB_WRITEMAP, so a cimctl opening that way with its smaller map shortened
 * the file under cimd, whose next write past the cut was SIGBUS. Synced opens (cimctl's)
 * use pwrite and leave the file alone. */
TEST_TIMEOUT(e2e_offline_cimctl_beside_nosync_cimd, 60)
{
    tsrv_t t;
    mk_t m;
    static uint64_t ids[N];
    static tmsg_t got[N + 10];
    tmsg_page_t page;
    char out[4096], path[300];
    struct stat st;

    /* cimd's map (and file) start at 512 MiB; cimctl's default map is 64 MiB */
    setenv("CIM_KV_MAP_SIZE", "536870912", 1);
    tsrv_start(&t, "--durability", "nosync", "--send_rate", "100000", "--send_burst", "100000",
               "--max_msg_bytes", "4000", NULL);
    unsetenv("CIM_KV_MAP_SIZE");
    cimc_t *b = tmsg_login(&t, "bob", "d1", cim_DeviceKind_MOBILE, NULL);
    cimc_close(b);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "user", "add", "carol",
                            NULL),
              0);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "app", "add", "other",
                            NULL),
              0);
    snprintf(path, sizeof(path), "%s/data.mdb", t.dir);
    ASSERT_OK(stat(path, &st));
    ASSERT_TRUE(st.st_size >= 536870912);
    cimc_t *a = tmsg_login(&t, "alice", "d1", cim_DeviceKind_MOBILE, NULL);
    ASSERT_OK(tmsg_send_many(a, "bob", N, 32, cim_MsgType_TEXT, make, &m, ids, NULL, NULL));
    cimc_close(a);
    b = tmsg_login(&t, "bob", "d1", cim_DeviceKind_MOBILE, NULL);
    tmsg_page_init(&page, got, N + 10, NULL, 0);
    ASSERT_OK(tmsg_sync_all(b, 0, 0, &page));
    ASSERT_EQ(page.n, N);
    cimc_close(b);
    ASSERT_EQ(tsrv_stop(&t), 0);
}
