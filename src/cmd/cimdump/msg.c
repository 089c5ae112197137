/* dump: messages: timeline, msg, decode-id. */
#include <string.h>

#include <pb_decode.h>

#include "cmd/cimdump/dump_int.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"

/* The id's own fields (time from the SnowFlake id, node, sequence) as JSON members. */
static void json_id_fields(jw_t *w, uint64_t id)
{
    uint64_t ms;
    uint32_t node, seq;
    char t[32];

    snowflake_decode(id, &ms, &node, &seq);
    dump__fmt_time(t, ms);
    jw_id(w, "id", id);
    jw_u64(w, "time_ms", ms);
    jw_str(w, "time", t);
    jw_u64(w, "node", node);
    jw_u64(w, "seq", seq);
}

static bool body_is_text(const dmsg_t *dm)
{
    return dm->m.msg_type != cim_MsgType_SYSTEM && dm->m.msg_type != cim_MsgType_RECALL &&
           dump__utf8_valid(dm->body, dm->body_len);
}

static void json_group(jw_t *w, const char *key, const cim_Group *g)
{
    jw_open(w, key, '{');
    jw_str(w, "group_id", g->group_id);
    jw_str(w, "name", g->name);
    jw_str(w, "owner", g->owner);
    jw_u64(w, "created_ms", g->created_ms);
    jw_u64(w, "member_count", g->member_count);
    jw_bool(w, "open", g->open);
    jw_close(w, '}');
}

/* The decoded body of a SYSTEM (GroupEvent) or RECALL (RecallEvent) message, if it has one. */
static void json_event(jw_t *w, const dmsg_t *dm)
{
    char e[16];

    if (dm->m.msg_type == cim_MsgType_SYSTEM && dm->m.conv_type == cim_ConvType_GROUP) {
        gevent_t ev;
        if (dump__gevent_decode(dm->body, dm->body_len, &ev) == 0) {
            jw_open(w, "group_event", '{');
            jw_str(w, "kind", dump__gekind_name(e, ev.kind));
            jw_str(w, "actor", ev.actor);
            jw_open(w, "users", '[');
            for (size_t i = 0; i < ev.nusers; i++)
                jw_str(w, NULL, ev.users[i]);
            jw_close(w, ']');
            if (ev.has_group)
                json_group(w, "group", &ev.group);
            else
                jw_null(w, "group");
            jw_close(w, '}');
        }
        mem_free(ev.users);
    } else if (dm->m.msg_type == cim_MsgType_RECALL) {
        cim_RecallEvent rv = cim_RecallEvent_init_zero;
        pb_istream_t is = pb_istream_from_buffer(dm->body, dm->body_len);
        if (pb_decode(&is, cim_RecallEvent_fields, &rv)) {
            jw_open(w, "recall_event", '{');
            jw_id(w, "msg_id", rv.msg_id);
            jw_str(w, "by", rv.by);
            jw_close(w, '}');
        }
    }
}

/* One message as a JSON object: @p rec NULL when the id names no record. Bodies longer
 * than @p body_max bytes (0: no limit) are cut there. */
static void json_msg(jw_t *w, uint64_t id, const uint8_t *rec, size_t len, size_t body_max)
{
    char e[16];
    dmsg_t dm;
    size_t show;

    jw_open(w, NULL, '{');
    json_id_fields(w, id);
    if (rec == NULL) {
        jw_bool(w, "missing", true);
        jw_close(w, '}');
        return;
    }
    jw_u64(w, "record_len", len);
    if (dump__msg_decode(rec, len, &dm) < 0) {
        jw_str(w, "error", "record is not a cim.Message");
        jw_hex(w, "record_hex", rec, len);
        jw_close(w, '}');
        mem_free(dm.body);
        return;
    }
    jw_str(w, "conv_type", dump__conv_name(e, dm.m.conv_type));
    jw_str(w, "from", dm.m.from);
    jw_str(w, "to", dm.m.to);
    jw_str(w, "msg_type", dump__msgtype_name(e, dm.m.msg_type));
    jw_str(w, "client_msg_id", dm.m.client_msg_id);
    jw_u64(w, "flags", dm.m.flags);
    jw_bool(w, "recalled", (dm.m.flags & 1) != 0);
    jw_str(w, "from_device", dump__device_name(e, dm.m.from_device));
    jw_u64(w, "message_time_ms", dm.m.time_ms);
    jw_u64(w, "body_len", dm.body_len);
    show = body_max > 0 && dm.body_len > body_max ? body_max : dm.body_len;
    if (body_is_text(&dm)) {
        /* cut at a character boundary */
        while (show < dm.body_len && show > 0 && (dm.body[show] & 0xc0) == 0x80)
            show--;
        jw_str(w, "body_encoding", "utf8");
        jw_strn(w, "body", dm.body, show);
    } else {
        jw_str(w, "body_encoding", "hex");
        jw_hex(w, "body", dm.body, show);
    }
    jw_bool(w, "body_truncated", show < dm.body_len);
    json_event(w, &dm);
    jw_close(w, '}');
    mem_free(dm.body);
}

static void text_event(FILE *f, const dmsg_t *dm)
{
    char e[16];

    if (dm->m.msg_type == cim_MsgType_SYSTEM && dm->m.conv_type == cim_ConvType_GROUP) {
        gevent_t ev;
        if (dump__gevent_decode(dm->body, dm->body_len, &ev) == 0) {
            fprintf(f, "event          %s by %s", dump__gekind_name(e, ev.kind), ev.actor);
            for (size_t i = 0; i < ev.nusers; i++)
                fprintf(f, "%s%s", i == 0 ? ": " : ", ", ev.users[i]);
            if (ev.has_group) {
                fprintf(f, "; group %s \"", ev.group.group_id);
                dump__text_str(f, ev.group.name);
                fprintf(f, "\" owner %s, %u members%s", ev.group.owner,
                        (unsigned)ev.group.member_count, ev.group.open ? ", open" : "");
            }
            fputc('\n', f);
        }
        mem_free(ev.users);
    } else if (dm->m.msg_type == cim_MsgType_RECALL) {
        cim_RecallEvent rv = cim_RecallEvent_init_zero;
        pb_istream_t is = pb_istream_from_buffer(dm->body, dm->body_len);
        if (pb_decode(&is, cim_RecallEvent_fields, &rv))
            fprintf(f, "event          recall of %llu by %s\n", (unsigned long long)rv.msg_id,
                    rv.by);
    }
}

/* A SYSTEM or RECALL body in a table row: "<GE_ADDED by alice: bob, carol>". @return
 * false when @p dm carries no event this build decodes. */
static bool text_event_short(FILE *f, const dmsg_t *dm)
{
    char e[16];
    bool ok = false;

    if (dm->m.msg_type == cim_MsgType_SYSTEM && dm->m.conv_type == cim_ConvType_GROUP) {
        gevent_t ev;
        if (dump__gevent_decode(dm->body, dm->body_len, &ev) == 0) {
            fprintf(f, "<%s by %s", dump__gekind_name(e, ev.kind), ev.actor);
            for (size_t i = 0; i < ev.nusers && i < 4; i++)
                fprintf(f, "%s%s", i == 0 ? ": " : ", ", ev.users[i]);
            fprintf(f, "%s>", ev.nusers > 4 ? ", ..." : "");
            ok = true;
        }
        mem_free(ev.users);
    } else if (dm->m.msg_type == cim_MsgType_RECALL) {
        cim_RecallEvent rv = cim_RecallEvent_init_zero;
        pb_istream_t is = pb_istream_from_buffer(dm->body, dm->body_len);
        if ((ok = pb_decode(&is, cim_RecallEvent_fields, &rv)))
            fprintf(f, "<recall of %llu by %s>", (unsigned long long)rv.msg_id, rv.by);
    }
    return ok;
}

/* The body on one line: text (escaped, at most @p max characters) or hex. */
static void text_body(FILE *f, const dmsg_t *dm, size_t max)
{
    if (body_is_text(dm)) {
        fputc('"', f);
        dump__text_put(f, dm->body, dm->body_len, max);
        fputc('"', f);
        return;
    }
    fputs("hex ", f);
    for (size_t i = 0; i < dm->body_len; i++) {
        if (max > 0 && 2 * i + 2 > max) {
            fputs("...", f);
            break;
        }
        fprintf(f, "%02x", dm->body[i]);
    }
}

/* ---- timeline and msg ---- */

static void text_msg_row(FILE *f, uint64_t id, const uint8_t *rec, size_t len)
{
    char t[32], e[16], e2[16];
    dmsg_t dm;

    dump__fmt_time(t, snowflake_time_ms(id));
    fprintf(f, "%-20llu %-24s ", (unsigned long long)id, t);
    if (rec == NULL) {
        fprintf(f, "(no record: removed by retention)\n");
        return;
    }
    if (dump__msg_decode(rec, len, &dm) < 0) {
        fprintf(f, "(record of %zu bytes is not a cim.Message)\n", len);
        mem_free(dm.body);
        return;
    }
    fprintf(f, "%-6s %-16s %-16s %-8s %c ",
            dm.m.conv_type == cim_ConvType_GROUP    ? "group"
            : dm.m.conv_type == cim_ConvType_DIRECT ? "direct"
                                                    : dump__conv_name(e2, dm.m.conv_type),
            dm.m.from, dm.m.to, dump__msgtype_name(e, dm.m.msg_type), (dm.m.flags & 1) ? 'R' : '-');
    if (!text_event_short(f, &dm))
        text_body(f, &dm, TEXT_BODY_MAX);
    fputc('\n', f);
    mem_free(dm.body);
}

int dump__cmd_timeline(dump_t *d)
{
    const char *user = d->pos[0];
    unsigned limit = d->limit ? d->limit : TL_LIMIT_DEFAULT;
    uint8_t ukey[KV_UKEY_MAX];
    uint64_t *ids = mem_alloc(limit * sizeof(*ids)), total = 0, after_n = 0;
    size_t klen, n = 0;
    jw_t *w = &d->w;
    char a[24];
    int rc;

    if ((rc = dump__need_user(d, user, NULL)) < 0)
        goto out;
    klen = kv_ukey(ukey, d->app, user);
    if ((rc = kv_timeline_count(d->txn, ukey, klen, &total)) < 0 ||
        (rc = kv_timeline_page(d->txn, ukey, klen, d->after, ids, limit, &n, &after_n)) < 0) {
        dump__fail_rc(d, "cannot read the timeline", rc);
        goto out;
    }
    if (d->json) {
        jw_open(w, NULL, '{');
        jw_str(w, "app", d->app);
        jw_str(w, "user", user);
        jw_id(w, "after", d->after);
        jw_u64(w, "limit", limit);
        jw_u64(w, "total", total);
        jw_u64(w, "count", n);
        jw_u64(w, "remain", after_n - n);
        jw_id_or_null(w, "next_after", n > 0 && after_n > n ? ids[n - 1] : 0);
        jw_open(w, "messages", '[');
    } else {
        fprintf(d->out, "%-20s %-24s %-6s %-16s %-16s %-8s %s %s\n", "ID", "TIME", "CONV", "FROM",
                "TO", "TYPE", "R", "BODY");
    }
    for (size_t i = 0; i < n; i++) {
        const uint8_t *rec = NULL;
        size_t len = 0;
        rc = kv_msg_get(d->txn, ids[i], &rec, &len);
        if (rc < 0 && rc != RC_ENOTFOUND) {
            dump__fail_rc(d, "cannot read a message", rc);
            goto out;
        }
        if (rc == RC_ENOTFOUND)
            rec = NULL;
        if (d->json)
            json_msg(w, ids[i], rec, len, TL_BODY_MAX);
        else
            text_msg_row(d->out, ids[i], rec, len);
    }
    rc = 0;
    if (d->json) {
        jw_close(w, ']');
        jw_close(w, '}');
    } else {
        snprintf(a, sizeof(a), "%llu", (unsigned long long)(n > 0 ? ids[n - 1] : d->after));
        fprintf(d->out, "(%zu of %llu after %llu; %llu more%s%s)\n", n, (unsigned long long)total,
                (unsigned long long)d->after, (unsigned long long)(after_n - n),
                after_n > n ? ": --after " : "", after_n > n ? a : "");
    }
out:
    mem_free(ids);
    return rc;
}

int dump__cmd_msg(dump_t *d)
{
    const uint8_t *rec = NULL;
    size_t len = 0;
    uint64_t id, ms;
    uint32_t node, seq;
    FILE *f = d->out;
    char t[32], e[16];
    dmsg_t dm;
    int rc;

    if (dump__parse_u64(d->pos[0], &id) < 0 || id == 0) {
        dump__fail("invalid message id '%s' (a decimal number)", d->pos[0]);
        return RC_EINVAL;
    }
    rc = kv_msg_get(d->txn, id, &rec, &len);
    if (rc == RC_ENOTFOUND) {
        dump__fail("unknown message id %llu", (unsigned long long)id);
        return rc;
    }
    if (rc < 0)
        return dump__fail_rc(d, "cannot read the message", rc);
    if (d->json) {
        json_msg(&d->w, id, rec, len, 0);
        return 0;
    }
    snowflake_decode(id, &ms, &node, &seq);
    dump__fmt_time(t, ms);
    fprintf(f, "id             %llu\ntime           %s (node %u, seq %u)\n", (unsigned long long)id,
            t, node, seq);
    if (dump__msg_decode(rec, len, &dm) < 0) {
        fprintf(f, "record         %zu bytes, not a cim.Message: ", len);
        for (size_t i = 0; i < len; i++)
            fprintf(f, "%02x", rec[i]);
        fputc('\n', f);
        mem_free(dm.body);
        return 0;
    }
    fprintf(f, "conversation   %s, from %s to %s\n", dump__conv_name(e, dm.m.conv_type), dm.m.from,
            dm.m.to);
    fprintf(f, "type           %s\n", dump__msgtype_name(e, dm.m.msg_type));
    fprintf(f, "client_msg_id  %s\n", dm.m.client_msg_id[0] ? dm.m.client_msg_id : "-");
    fprintf(f, "from_device    %s\n", dump__device_name(e, dm.m.from_device));
    fprintf(f, "flags          0x%x%s\n", (unsigned)dm.m.flags,
            (dm.m.flags & 1) ? " (RECALLED)" : "");
    fprintf(f, "body           %zu bytes, ", dm.body_len);
    text_body(f, &dm, 0);
    fputc('\n', f);
    text_event(f, &dm);
    mem_free(dm.body);
    return 0;
}

/* ---- decode-id ---- */

int dump__cmd_decode_id(dump_t *d)
{
    uint64_t id, ms;
    uint32_t node, seq;
    char t[32];

    if (dump__parse_u64(d->pos[0], &id) < 0) {
        dump__fail("invalid id '%s' (a decimal number)", d->pos[0]);
        return RC_EINVAL;
    }
    if (d->json) {
        jw_open(&d->w, NULL, '{');
        json_id_fields(&d->w, id);
        jw_close(&d->w, '}');
        return 0;
    }
    snowflake_decode(id, &ms, &node, &seq);
    dump__fmt_time(t, ms);
    fprintf(d->out, "id    %llu\ntime  %s (%llu ms)\nnode  %u\nseq   %u\n", (unsigned long long)id,
            t, (unsigned long long)ms, node, seq);
    return 0;
}
