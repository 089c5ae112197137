/* dump: stats: databases, map use, messages, readers. */
#include <string.h>
#include <unistd.h>

#include "cmd/cimdump/dump_int.h"
#include "cmd/cimdump/jv.h"
#include "core/mem.h"
#include "core/snowflake.h"

typedef struct statctx {
    dump_t *d;
    kv_envinfo_t info;
    kv_dbstat_t *dbs;
    size_t n, cap;
} statctx_t;

static int on_dbstat(void *ctx, const kv_dbstat_t *st)
{
    statctx_t *s = ctx;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 32;
        s->dbs = mem_realloc(s->dbs, s->cap * sizeof(*s->dbs));
    }
    s->dbs[s->n++] = *st;
    return 0;
}

static uint64_t db_entries(const statctx_t *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->dbs[i].name, name) == 0)
            return s->dbs[i].entries;
    return 0;
}

typedef struct reader {
    long pid;
    uint64_t txn;
} reader_t;

typedef struct readers {
    reader_t *r;
    size_t n, cap;
} readers_t;

static int on_reader(void *ctx, long pid, uint64_t txn)
{
    readers_t *rs = ctx;
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? 2 * rs->cap : 16;
        rs->r = mem_realloc(rs->r, rs->cap * sizeof(*rs->r));
    }
    rs->r[rs->n].pid = pid;
    rs->r[rs->n++].txn = txn;
    return 0;
}

/* {"id", "time_ms", "time"} of a message id, or null for 0 (no message). */
static json_t *json_id_time(uint64_t id)
{
    uint64_t ms = snowflake_time_ms(id);
    json_t *o;
    char t[32];

    if (id == 0)
        return json_null();
    dump__fmt_time(t, ms);
    o = jv_obj();
    jv_set(o, "id", jv_id(id));
    jv_set(o, "time_ms", jv_u64(ms));
    jv_set(o, "time", jv_str(t));
    return o;
}

/* Bytes per stored message, "-" when there is no message. */
static void fmt_per_msg(char out[32], uint64_t bytes, uint64_t msgs)
{
    if (msgs == 0)
        snprintf(out, 32, "-");
    else
        snprintf(out, 32, "%.1f", (double)bytes / (double)msgs);
}

/* The live pages no database's own tree holds: the separate trees in which a DUPSORT
 * database keeps a key's values once they outgrow its leaf (timeline: every user's ids),
 * which mdb_stat does not count in their database. @p live: bytes of live pages, the two
 * meta pages among them. */
static uint64_t dup_tree_bytes(const statctx_t *s, uint64_t live)
{
    uint64_t counted = 2 * (uint64_t)s->info.page_size;
    for (size_t i = 0; i < s->n; i++)
        counted += (s->dbs[i].branch_pages + s->dbs[i].leaf_pages + s->dbs[i].overflow_pages) *
                   s->info.page_size;
    return live > counted ? live - counted : 0;
}

int dump__cmd_stats(dump_t *d)
{
    statctx_t s = {.d = d};
    readers_t rs = {0};
    uint64_t free_pages = 0, first = 0, last = 0, issued = 0, nmsg = 0, used, bytes, live, dup;
    uint32_t issued_node = 0;
    long self = (long)getpid();
    FILE *f = d->out;
    char a[32], b[32], c[32];
    int rc;

    if ((rc = kv_env_info(d->kv, &s.info)) < 0 ||
        (rc = kv_stat_each(d->txn, on_dbstat, &s, &free_pages)) < 0 ||
        (rc = kv_msg_first_id(d->txn, &first)) < 0 || (rc = kv_msg_last_id(d->txn, &last)) < 0 ||
        (rc = kv_last_id_get(d->txn, &issued)) < 0 || (rc = kv_msg_count(d->txn, &nmsg)) < 0 ||
        (rc = kv_reader_each(d->kv, on_reader, &rs)) < 0) {
        dump__fail_rc(d, "cannot read the statistics", rc);
        goto out;
    }
    /* The node id of the cimd that wrote here last: a SnowFlake id carries it (the
     * directory holds no config to read node_id from). */
    snowflake_decode(issued, NULL, &issued_node, NULL);
    used = (s.info.last_page + 1) * s.info.page_size;
    /* the pages in use that are not on the free list (reusable by later writes) */
    live = used > free_pages * s.info.page_size ? used - free_pages * s.info.page_size : 0;
    dup = dup_tree_bytes(&s, live);
    if (d->json) {
        json_t *map = jv_obj(), *dbs = jv_arr(), *msgs = jv_obj(), *per = jv_obj();
        json_t *readers = jv_obj(), *active = jv_arr();
        jv_set(map, "size", jv_u64(s.info.map_size));
        jv_set(map, "used", jv_u64(used));
        jv_set(map, "used_pct",
               jv_fixed(s.info.map_size ? 100.0 * (double)used / (double)s.info.map_size : 0, 4));
        jv_set(map, "file_size", jv_u64(s.info.file_size));
        jv_set(map, "page_size", jv_u64(s.info.page_size));
        jv_set(map, "last_page", jv_u64(s.info.last_page));
        jv_set(map, "free_pages", jv_u64(free_pages));
        jv_set(map, "dup_tree_bytes", jv_u64(dup));
        for (size_t i = 0; i < s.n; i++) {
            const kv_dbstat_t *st = &s.dbs[i];
            json_t *o = jv_obj();
            jv_set(o, "name", jv_str(st->name));
            jv_set(o, "dupsort", json_boolean(st->dupsort));
            jv_set(o, "entries", jv_u64(st->entries));
            jv_set(o, "depth", jv_u64(st->depth));
            jv_set(o, "branch_pages", jv_u64(st->branch_pages));
            jv_set(o, "leaf_pages", jv_u64(st->leaf_pages));
            jv_set(o, "overflow_pages", jv_u64(st->overflow_pages));
            bytes = (st->branch_pages + st->leaf_pages + st->overflow_pages) * s.info.page_size;
            jv_set(o, "bytes", jv_u64(bytes));
            jv_set(o, "bytes_per_message", jv_ratio(bytes, nmsg));
            jv_push(dbs, o);
        }
        jv_set(per, "file", jv_ratio(s.info.file_size, nmsg));
        jv_set(per, "used", jv_ratio(used, nmsg));
        jv_set(per, "live", jv_ratio(live, nmsg));
        jv_set(msgs, "count", jv_u64(nmsg));
        jv_set(msgs, "oldest", json_id_time(first));
        jv_set(msgs, "newest", json_id_time(last));
        jv_set(msgs, "last_issued", jv_id(issued));
        jv_set(msgs, "bytes_per_message", per);
        for (size_t i = 0; i < rs.n; i++) {
            json_t *o = jv_obj();
            jv_set(o, "pid", jv_u64((uint64_t)rs.r[i].pid));
            jv_set(o, "txn", rs.r[i].txn == 0 ? json_null() : jv_u64(rs.r[i].txn));
            jv_set(o, "self", json_boolean(rs.r[i].pid == self));
            jv_push(active, o);
        }
        jv_set(readers, "max", jv_u64(s.info.max_readers));
        jv_set(readers, "slots_used", jv_u64(s.info.reader_slots));
        jv_set(readers, "count", jv_u64(rs.n));
        jv_set(readers, "active", active);
        d->doc = jv_obj();
        jv_set(d->doc, "data", jv_str(d->data));
        jv_set(d->doc, "schema", jv_u64(KV_SCHEMA));
        jv_set(d->doc, "node_id", issued != 0 ? jv_u64(issued_node) : json_null());
        jv_set(d->doc, "map", map);
        jv_set(d->doc, "last_txn", jv_u64(s.info.last_txn));
        jv_set(d->doc, "databases", dbs);
        jv_set(d->doc, "apps", jv_u64(db_entries(&s, "apps")));
        jv_set(d->doc, "users", jv_u64(db_entries(&s, "users")));
        jv_set(d->doc, "groups", jv_u64(db_entries(&s, "groups")));
        jv_set(d->doc, "messages", msgs);
        jv_set(d->doc, "readers", readers);
        goto out;
    }
    dump__fmt_bytes(a, s.info.map_size);
    dump__fmt_bytes(b, used);
    dump__fmt_bytes(c, s.info.file_size);
    fprintf(f, "data        %s\nschema      %d\n", d->data, KV_SCHEMA);
    if (issued != 0)
        fprintf(f, "node        %u (the node id in the last id issued)\n", issued_node);
    else
        fprintf(f, "node        - (no id issued yet)\n");
    fprintf(f,
            "map         %s mapped, %s used (%.2f%%), data.mdb %s, %u-byte pages, "
            "%llu free\n",
            a, b, s.info.map_size ? 100.0 * (double)used / (double)s.info.map_size : 0, c,
            s.info.page_size, (unsigned long long)free_pages);
    fprintf(f, "last txn    %llu\n", (unsigned long long)s.info.last_txn);
    fprintf(f, "apps        %llu\nusers       %llu\ngroups      %llu\n",
            (unsigned long long)db_entries(&s, "apps"), (unsigned long long)db_entries(&s, "users"),
            (unsigned long long)db_entries(&s, "groups"));
    fprintf(f, "messages    %llu", (unsigned long long)nmsg);
    if (first != 0) {
        dump__fmt_time(a, snowflake_time_ms(first));
        dump__fmt_time(b, snowflake_time_ms(last));
        fprintf(f, ": oldest %llu (%s), newest %llu (%s)", (unsigned long long)first, a,
                (unsigned long long)last, b);
    }
    fprintf(f, "; last id issued %llu\n", (unsigned long long)issued);
    fmt_per_msg(a, s.info.file_size, nmsg);
    fmt_per_msg(b, used, nmsg);
    fmt_per_msg(c, live, nmsg);
    fprintf(f,
            "per message %s bytes of data.mdb, %s of the pages used, %s of them live (not on the "
            "free list)\n",
            a, b, c);
    fprintf(f, "readers     %zu in use of %u slots (high-water %u)\n", rs.n, s.info.max_readers,
            s.info.reader_slots);
    for (size_t i = 0; i < rs.n; i++) {
        fprintf(f, "  pid %-8ld ", rs.r[i].pid);
        if (rs.r[i].txn == 0)
            fprintf(f, "between transactions");
        else
            fprintf(f, "reads txn %llu", (unsigned long long)rs.r[i].txn);
        fprintf(f, "%s\n", rs.r[i].pid == self ? " (this cimdump)" : "");
    }
    fprintf(f, "\n%-12s %12s %5s %8s %10s %9s %12s %9s\n", "DATABASE", "ENTRIES", "DEPTH", "BRANCH",
            "LEAF", "OVERFLOW", "SIZE", "B/MSG");
    for (size_t i = 0; i < s.n; i++) {
        const kv_dbstat_t *st = &s.dbs[i];
        bytes = (st->branch_pages + st->leaf_pages + st->overflow_pages) * s.info.page_size;
        dump__fmt_bytes(a, bytes);
        fmt_per_msg(b, bytes, nmsg);
        fprintf(f, "%-12s %12llu %5u %8llu %10llu %9llu %12s %9s\n", st->name,
                (unsigned long long)st->entries, st->depth, (unsigned long long)st->branch_pages,
                (unsigned long long)st->leaf_pages, (unsigned long long)st->overflow_pages, a, b);
    }
    dump__fmt_bytes(a, dup);
    fmt_per_msg(b, dup, nmsg);
    fprintf(f, "%-12s %12s %5s %8s %10s %9s %12s %9s\n", "(dup trees)", "-", "-", "-", "-", "-", a,
            b);
out:
    mem_free(s.dbs);
    mem_free(rs.r);
    return rc;
}
