/* dump: stats: databases, map use, messages, readers. */
#include <string.h>
#include <unistd.h>

#include "cmd/cimdump/dump_int.h"
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

static void json_id_time(jw_t *w, const char *key, uint64_t id)
{
    uint64_t ms = snowflake_time_ms(id);
    char t[32];

    if (id == 0) {
        jw_null(w, key);
        return;
    }
    dump__fmt_time(t, ms);
    jw_open(w, key, '{');
    jw_id(w, "id", id);
    jw_u64(w, "time_ms", ms);
    jw_str(w, "time", t);
    jw_close(w, '}');
}

/* Bytes per stored message, "-" when there is no message. */
static void fmt_per_msg(char out[32], uint64_t bytes, uint64_t msgs)
{
    if (msgs == 0)
        snprintf(out, 32, "-");
    else
        snprintf(out, 32, "%.1f", (double)bytes / (double)msgs);
}

int dump__cmd_stats(dump_t *d)
{
    statctx_t s = {.d = d};
    readers_t rs = {0};
    uint64_t free_pages = 0, first = 0, last = 0, issued = 0, used, bytes, live, nmsg;
    long self = (long)getpid();
    FILE *f = d->out;
    jw_t *w = &d->w;
    char a[32], b[32], c[32];
    int rc;

    if ((rc = kv_env_info(d->kv, &s.info)) < 0 ||
        (rc = kv_stat_each(d->txn, on_dbstat, &s, &free_pages)) < 0 ||
        (rc = kv_msg_first_id(d->txn, &first)) < 0 || (rc = kv_msg_last_id(d->txn, &last)) < 0 ||
        (rc = kv_last_id_get(d->txn, &issued)) < 0 ||
        (rc = kv_reader_each(d->kv, on_reader, &rs)) < 0) {
        dump__fail_rc(d, "cannot read the statistics", rc);
        goto out;
    }
    used = (s.info.last_page + 1) * s.info.page_size;
    /* the pages in use that are not on the free list (reusable by later writes) */
    live = used > free_pages * s.info.page_size ? used - free_pages * s.info.page_size : 0;
    /* every stored message is one record of msgs (STORAGE.md); a schema without it gives
     * no count, and every per-message figure is then null */
    nmsg = db_entries(&s, "msgs");
    if (d->json) {
        jw_open(w, NULL, '{');
        jw_str(w, "data", d->data);
        jw_u64(w, "schema", KV_SCHEMA);
        jw_open(w, "map", '{');
        jw_u64(w, "size", s.info.map_size);
        jw_u64(w, "used", used);
        jw_sep(w, "used_pct");
        fprintf(f, "%.4f", s.info.map_size ? 100.0 * (double)used / (double)s.info.map_size : 0);
        jw_u64(w, "file_size", s.info.file_size);
        jw_u64(w, "page_size", s.info.page_size);
        jw_u64(w, "last_page", s.info.last_page);
        jw_u64(w, "free_pages", free_pages);
        jw_close(w, '}');
        jw_u64(w, "last_txn", s.info.last_txn);
        jw_open(w, "databases", '[');
        for (size_t i = 0; i < s.n; i++) {
            const kv_dbstat_t *st = &s.dbs[i];
            jw_open(w, NULL, '{');
            jw_str(w, "name", st->name);
            jw_bool(w, "dupsort", st->dupsort);
            jw_u64(w, "entries", st->entries);
            jw_u64(w, "depth", st->depth);
            jw_u64(w, "branch_pages", st->branch_pages);
            jw_u64(w, "leaf_pages", st->leaf_pages);
            jw_u64(w, "overflow_pages", st->overflow_pages);
            bytes = (st->branch_pages + st->leaf_pages + st->overflow_pages) * s.info.page_size;
            jw_u64(w, "bytes", bytes);
            jw_ratio(w, "bytes_per_message", bytes, nmsg);
            jw_close(w, '}');
        }
        jw_close(w, ']');
        jw_u64(w, "apps", db_entries(&s, "apps"));
        jw_u64(w, "users", db_entries(&s, "users"));
        jw_u64(w, "groups", db_entries(&s, "groups"));
        jw_open(w, "messages", '{');
        jw_u64(w, "count", db_entries(&s, "msgs"));
        json_id_time(w, "oldest", first);
        json_id_time(w, "newest", last);
        jw_id(w, "last_issued", issued);
        jw_open(w, "bytes_per_message", '{');
        jw_ratio(w, "file", s.info.file_size, nmsg);
        jw_ratio(w, "used", used, nmsg);
        jw_ratio(w, "live", live, nmsg);
        jw_close(w, '}');
        jw_close(w, '}');
        jw_open(w, "readers", '{');
        jw_u64(w, "max", s.info.max_readers);
        jw_u64(w, "slots_used", s.info.reader_slots);
        jw_u64(w, "count", rs.n);
        jw_open(w, "active", '[');
        for (size_t i = 0; i < rs.n; i++) {
            jw_open(w, NULL, '{');
            jw_u64(w, "pid", (uint64_t)rs.r[i].pid);
            if (rs.r[i].txn == 0)
                jw_null(w, "txn");
            else
                jw_u64(w, "txn", rs.r[i].txn);
            jw_bool(w, "self", rs.r[i].pid == self);
            jw_close(w, '}');
        }
        jw_close(w, ']');
        jw_close(w, '}');
        jw_close(w, '}');
        goto out;
    }
    dump__fmt_bytes(a, s.info.map_size);
    dump__fmt_bytes(b, used);
    dump__fmt_bytes(c, s.info.file_size);
    fprintf(f, "data        %s\nschema      %d\n", d->data, KV_SCHEMA);
    fprintf(f,
            "map         %s mapped, %s used (%.2f%%), data.mdb %s, %u-byte pages, "
            "%llu free\n",
            a, b, s.info.map_size ? 100.0 * (double)used / (double)s.info.map_size : 0, c,
            s.info.page_size, (unsigned long long)free_pages);
    fprintf(f, "last txn    %llu\n", (unsigned long long)s.info.last_txn);
    fprintf(f, "apps        %llu\nusers       %llu\ngroups      %llu\n",
            (unsigned long long)db_entries(&s, "apps"), (unsigned long long)db_entries(&s, "users"),
            (unsigned long long)db_entries(&s, "groups"));
    fprintf(f, "messages    %llu", (unsigned long long)db_entries(&s, "msgs"));
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
out:
    mem_free(s.dbs);
    mem_free(rs.r);
    return rc;
}
