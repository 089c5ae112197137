/* Integration: `cimctl backup` of a running cimd that holds messages, `cimctl restore` into
 * a new directory, and a cimd started on it that serves the same messages under the same
 * identity; and every refusal (core/backup.h), each leaving everything as it was. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/cim.h"
#include "core/chan.h"
#include "support/msg.h"
#include "support/server.h"
#include "support/test.h"

#define BEFORE 40 /* messages in the backup */
#define AFTER 5   /* messages sent after it: not in the backup */

static const char *mode_of(const char *dir, const char *name, char *buf)
{
    char path[512];
    struct stat sb;

    snprintf(path, sizeof(path), "%s%s%s", dir, name ? "/" : "", name ? name : "");
    ASSERT_OK(stat(path, &sb));
    snprintf(buf, 8, "%03o", (unsigned)(sb.st_mode & 0777));
    return buf;
}

static off_t size_of(const char *dir, const char *name)
{
    char path[512];
    struct stat sb;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    ASSERT_OK(stat(path, &sb));
    return sb.st_size;
}

/* The names in @p dir, sorted, space-separated ("" when empty, "-" when missing). */
static const char *listing(const char *dir, char *buf, size_t len)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    size_t used = 0;

    buf[0] = '\0';
    if (n < 0)
        return "-";
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.')
            used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? " " : "",
                                     names[i]->d_name);
        free(names[i]);
    }
    free(names);
    return buf;
}

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ASSERT_EQ(system(cmd), 0);
}

/* Send @p n messages alice -> bob with bodies "m<i>", ids into @p ids. */
static void send_some(cimc_t *a, int from, int n, uint64_t *ids)
{
    for (int i = from; i < from + n; i++) {
        char cmid[16], body[16];
        cim_SendRsp rsp = cim_SendRsp_init_zero;

        snprintf(cmid, sizeof(cmid), "c%d", i);
        snprintf(body, sizeof(body), "m%d", i);
        ASSERT_OK(tmsg_send(a, "bob", cmid, cim_MsgType_TEXT, body, strlen(body), false, &rsp));
        ASSERT_EQ(rsp.code, cim_Code_OK);
        ids[i] = rsp.msg_id;
    }
}

TEST_TIMEOUT(e2e_service_backup_live_restore, 60)
{
    static tmsg_t msgs[BEFORE + AFTER + 8];
    uint64_t ids[BEFORE + AFTER];
    char base[] = "/tmp/cimtest-XXXXXX", bdir[64], rdir[64], out[4096], m[8], hex[65];
    uint8_t bodies[4096];
    tmsg_page_t p;
    tsrv_t t, r;

    ASSERT_NOT_NULL(mkdtemp(base));
    snprintf(bdir, sizeof(bdir), "%s/backup", base);
    snprintf(rdir, sizeof(rdir), "%s/data", base);
    tsrv_start(&t, NULL);
    cimc_close(tsrv_login(&t, "bob", "laptop", NULL)); /* bob exists */
    cimc_t *a = tsrv_login(&t, "alice", "d1", NULL);
    send_some(a, 0, BEFORE, ids);

    /* Hot: cimd keeps serving, alice stays connected. */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "backup", bdir, NULL),
              0);
    ASSERT_NOT_NULL(strstr(out, "backed up"));
    ASSERT_STREQ(listing(bdir, out, sizeof(out)), "data.mdb identity.key");
    ASSERT_STREQ(mode_of(bdir, NULL, m), "700");
    ASSERT_STREQ(mode_of(bdir, "data.mdb", m), "600");
    ASSERT_STREQ(mode_of(bdir, "identity.key", m), "600");
    /* Compacted: the live file holds its whole (reserved) map, the copy only the data. */
    ASSERT_LT(size_of(bdir, "data.mdb") * 4, size_of(t.dir, "data.mdb"));
    send_some(a, BEFORE, AFTER, ids);
    cimc_close(a);

    /* A second backup into the same place is refused and changes nothing. */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "backup", bdir, NULL),
              1);
    ASSERT_STREQ(listing(bdir, out, sizeof(out)), "data.mdb identity.key");

    /* Restore into a new directory; the identity is the live server's. */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", rdir, "restore", bdir, NULL),
              0);
    chan_hex(t.key, hex);
    ASSERT_NOT_NULL(strstr(out, hex));
    ASSERT_STREQ(mode_of(rdir, NULL, m), "700");
    ASSERT_STREQ(mode_of(rdir, "data.mdb", m), "600");
    ASSERT_STREQ(mode_of(rdir, "identity.key", m), "600");

    /* A cimd on the restored directory: same key, and bob's new device syncs exactly the
     * messages sent before the backup; alice's history of the conversation has them too. */
    tsrv_start_on(&r, rdir, NULL);
    ASSERT_MEMEQ(r.key, t.key, 32);
    ASSERT_TRUE(!r.new_identity);
    cimc_t *b = tsrv_login(&r, "bob", "phone", NULL);
    tmsg_page_init(&p, msgs, sizeof(msgs) / sizeof(msgs[0]), bodies, sizeof(bodies));
    ASSERT_OK(tmsg_sync_all(b, 0, 100, &p));
    ASSERT_EQ(p.n, BEFORE);
    for (int i = 0; i < BEFORE; i++) {
        char body[16];
        snprintf(body, sizeof(body), "m%d", i);
        ASSERT_U64_EQ(msgs[i].msg_id, ids[i]);
        ASSERT_STREQ(msgs[i].from, "alice");
        ASSERT_EQ(msgs[i].body_len, strlen(body));
        ASSERT_TRUE(memcmp(msgs[i].body, body, strlen(body)) == 0);
    }
    cimc_close(b);
    a = tsrv_login(&r, "alice", "d2", NULL);
    tmsg_page_init(&p, msgs, sizeof(msgs) / sizeof(msgs[0]), NULL, 0);
    ASSERT_OK(tmsg_history(a, cim_ConvType_DIRECT, "bob", 0, 100, &p));
    ASSERT_EQ(p.code, cim_Code_OK);
    ASSERT_EQ(p.n, BEFORE);
    /* and it goes on: a new message gets an id past every restored one */
    send_some(a, BEFORE, 1, ids);
    ASSERT_TRUE(ids[BEFORE] > ids[BEFORE - 1]);
    cimc_close(a);

    /* Restoring over a live data directory is refused, naming it; nothing changes. */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", rdir, "restore", bdir, NULL),
              1);
    cimc_close(tsrv_login(&r, "bob", "phone", NULL)); /* still serving */
    ASSERT_EQ(tsrv_stop(&r), 0);
    ASSERT_EQ(tsrv_stop(&t), 0);
    rm_rf(base);
}

TEST_TIMEOUT(e2e_service_backup_refusals, 30)
{
    char base[] = "/tmp/cimtest-XXXXXX", dir[64], other[64], junk[128], out[1024], ls[256];
    tsrv_tool_t tt;
    tsrv_t t;

    ASSERT_NOT_NULL(mkdtemp(base));
    tsrv_start(&t, NULL);
    snprintf(dir, sizeof(dir), "%s/b", base);
    snprintf(other, sizeof(other), "%s/other", base);

    /* backup: into a non-empty directory, into a file, from a directory without cim data */
    ASSERT_OK(mkdir(other, 0700));
    snprintf(junk, sizeof(junk), "%s/keep", other);
    FILE *f = fopen(junk, "w");
    ASSERT_NOT_NULL(f);
    fclose(f);
    tsrv_tool_start(&tt, NULL, 0, "cimctl", "--data", t.dir, "backup", other, (char *)NULL);
    ASSERT_EQ(tsrv_tool_finish(&tt, 10000), 1);
    ASSERT_NOT_NULL(strstr(tt.err, "is not an empty directory"));
    ASSERT_STREQ(listing(other, ls, sizeof(ls)), "keep");
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "backup", junk, NULL),
              1);
    tsrv_tool_start(&tt, NULL, 0, "cimctl", "--data", other, "backup", dir, (char *)NULL);
    ASSERT_EQ(tsrv_tool_finish(&tt, 10000), 1);
    ASSERT_NOT_NULL(strstr(tt.err, "no cim data in"));
    ASSERT_STREQ(listing(dir, ls, sizeof(ls)), "-"); /* not even created */

    /* restore: over the live directory, into a non-empty one, from no backup */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "backup", dir, NULL), 0);
    tsrv_tool_start(&tt, NULL, 0, "cimctl", "--data", t.dir, "restore", dir, (char *)NULL);
    ASSERT_EQ(tsrv_tool_finish(&tt, 10000), 1);
    ASSERT_NOT_NULL(strstr(tt.err, "already holds cim data"));
    ASSERT_NOT_NULL(strstr(tt.err, "nothing changed"));
    cimc_close(tsrv_login(&t, "alice", "d1", NULL)); /* the live server is untouched */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", other, "restore", dir, NULL),
              1);
    ASSERT_STREQ(listing(other, ls, sizeof(ls)), "keep");
    snprintf(junk, sizeof(junk), "%s/new", base);
    tsrv_tool_start(&tt, NULL, 0, "cimctl", "--data", junk, "restore", other, (char *)NULL);
    ASSERT_EQ(tsrv_tool_finish(&tt, 10000), 1);
    ASSERT_NOT_NULL(strstr(tt.err, "is no cim backup: no data.mdb"));
    ASSERT_STREQ(listing(junk, ls, sizeof(ls)), "-");

    /* A backup whose data.mdb is not LMDB: the restore undoes itself, leaving the empty
     * directory it was given empty. */
    snprintf(junk, sizeof(junk), "%s/data.mdb", dir);
    f = fopen(junk, "w");
    ASSERT_NOT_NULL(f);
    fputs("not lmdb", f);
    fclose(f);
    snprintf(junk, sizeof(junk), "%s/empty", base);
    ASSERT_OK(mkdir(junk, 0755));
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", junk, "restore", dir, NULL), 1);
    ASSERT_STREQ(listing(junk, ls, sizeof(ls)), "");
    ASSERT_EQ(tsrv_stop(&t), 0);
    rm_rf(base);
}
