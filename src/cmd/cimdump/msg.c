/* dump: messages: timeline, msg, decode-id. */
#include <string.h>

#include <pb_decode.h>

#include "cmd/cimdump/dump_int.h"
#include "cmd/cimdump/jv.h"
#include "actors/feed.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"

/* The id's own fields (time from the SnowFlake id, node, sequence) as members of @p o. */
static void json_id_fields(json_t *o, uint64_t id)
{
    uint64_t ms;
    uint32_t node, seq;
    char t[32];

    snowflake_decode(id, &ms, &node, &seq);
    dump__fmt_time(t, ms);
    jv_set(o, "id", jv_id(id));
    jv_set(o, "time_ms", jv_u64(ms));
    jv_set(o, "time", jv_str(t));
    jv_set(o, "node", jv_u64(node));
    jv_set(o, "seq", jv_u64(seq));
}

static bool body_is_text(const dmsg_t *dm)
{
    return dm->m.msg_type != cim_MsgType_SYSTEM && dm->m.msg_type != cim_MsgType_RECALL &&
           dump__utf8_valid(dm->body, dm->body_len);
}

static json_t *json_group(const cim_Group *g)
{
    json_t *o = jv_obj();

    jv_set(o, "group_id", jv_str(g->group_id));
    jv_set(o, "name", jv_str(g->name));
    jv_set(o, "owner", jv_str(g->owner));
    jv_set(o, "created_ms", jv_u64(g->created_ms));
    jv_set(o, "member_count", jv_u64(g->member_count));
    jv_set(o, "open", json_boolean(g->open));
    return o;
}

/* The decoded body of a SYSTEM (GroupEvent) or RECALL (RecallEvent) message, if it has
 * one, as a member of @p o. */
static void json_event(json_t *o, const dmsg_t *dm)
{
    char e[16];

    if (dm->m.msg_type == cim_MsgType_SYSTEM && dm->m.conv_type == cim_ConvType_GROUP) {
        gevent_t ev;
        if (dump__gevent_decode(dm->body, dm->body_len, &ev) == 0) {
            json_t *ge = jv_obj(), *users = jv_arr();
            jv_set(ge, "kind", jv_str(dump__gekind_name(e, ev.kind)));
            jv_set(ge, "actor", jv_str(ev.actor));
            for (size_t i = 0; i < ev.nusers; i++)
                jv_push(users, jv_str(ev.users[i]));
            jv_set(ge, "users", users);
            jv_set(ge, "group", ev.has_group ? json_group(&ev.group) : json_null());
            jv_set(o, "group_event", ge);
        }
        mem_free(ev.users);
    } else if (dm->m.msg_type == cim_MsgType_RECALL) {
        cim_RecallEvent rv = cim_RecallEvent_init_zero;
        pb_istream_t is = pb_istream_from_buffer(dm->body, dm->body_len);
        if (pb_decode(&is, cim_RecallEvent_fields, &rv)) {
            json_t *re = jv_obj();
            jv_set(re, "msg_id", jv_id(rv.msg_id));
            jv_set(re, "by", jv_str(rv.by));
            jv_set(o, "recall_event", re);
        }
    }
}

/* One message as a JSON object: @p rec NULL when the id names no record. Bodies longer
 * than @p body_max bytes (0: no limit) are cut there. */
static json_t *json_msg(uint64_t id, const uint8_t *rec, size_t len, size_t body_max)
{
    json_t *o = jv_obj();
    char e[16];
    dmsg_t dm;
    size_t show;

    json_id_fields(o, id);
    if (rec == NULL) {
        jv_set(o, "missing", json_true());
        return o;
    }
    jv_set(o, "record_len", jv_u64(len));
    if (dump__msg_decode(id, rec, len, &dm) < 0) {
        jv_set(o, "error", jv_str("record is not a cim.Message"));
        jv_set(o, "record_hex", jv_hex(rec, len));
        mem_free(dm.body);
        return o;
    }
    jv_set(o, "head_implied", json_boolean(dm.head_implied));
    jv_set(o, "conv_type", jv_str(dump__conv_name(e, dm.m.conv_type)));
    jv_set(o, "from", jv_str(dm.m.from));
    jv_set(o, "to", jv_str(dm.m.to));
    jv_set(o, "msg_type", jv_str(dump__msgtype_name(e, dm.m.msg_type)));
    jv_set(o, "client_msg_id", jv_str(dm.m.client_msg_id));
    jv_set(o, "flags", jv_u64(dm.m.flags));
    jv_set(o, "recalled", json_boolean((dm.m.flags & 1) != 0));
    jv_set(o, "from_device", jv_str(dump__device_name(e, dm.m.from_device)));
    jv_set(o, "message_time_ms", jv_u64(dm.m.time_ms));
    jv_set(o, "body_len", jv_u64(dm.body_len));
    show = body_max > 0 && dm.body_len > body_max ? body_max : dm.body_len;
    if (body_is_text(&dm)) {
        /* cut at a character boundary */
        while (show < dm.body_len && show > 0 && (dm.body[show] & 0xc0) == 0x80)
            show--;
        jv_set(o, "body_encoding", jv_str("utf8"));
        jv_set(o, "body", jv_text(dm.body, show));
    } else {
        jv_set(o, "body_encoding", jv_str("hex"));
        jv_set(o, "body", jv_hex(dm.body, show));
    }
    jv_set(o, "body_truncated", json_boolean(show < dm.body_len));
    json_event(o, &dm);
    mem_free(dm.body);
    return o;
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
    if (dump__msg_decode(id, rec, len, &dm) < 0) {
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
    uint64_t *ids = mem_alloc(limit * sizeof(*ids)), total = 0, after_n = 0;
    size_t n = 0;
    json_t *msgs = NULL; /* --json: held by d->doc */
    char a[24];
    int rc;

    if ((rc = dump__need_user(d, user, NULL)) < 0)
        goto out;
    if ((rc = feed_count(d->txn, d->app, user, &total)) < 0 ||
        (rc = feed_page(d->txn, d->app, user, d->after, ids, limit, &n, &after_n)) < 0) {
        dump__fail_rc(d, "cannot read the timeline", rc);
        goto out;
    }
    if (d->json) {
        d->doc = jv_obj();
        jv_set(d->doc, "app", jv_str(d->app));
        jv_set(d->doc, "user", jv_str(user));
        jv_set(d->doc, "after", jv_id(d->after));
        jv_set(d->doc, "limit", jv_u64(limit));
        jv_set(d->doc, "total", jv_u64(total));
        jv_set(d->doc, "count", jv_u64(n));
        jv_set(d->doc, "remain", jv_u64(after_n - n));
        jv_set(d->doc, "next_after", jv_id_or_null(n > 0 && after_n > n ? ids[n - 1] : 0));
        jv_set(d->doc, "messages", msgs = jv_arr());
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
            jv_push(msgs, json_msg(ids[i], rec, len, TL_BODY_MAX));
        else
            text_msg_row(d->out, ids[i], rec, len);
    }
    rc = 0;
    if (!d->json) {
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
        d->doc = json_msg(id, rec, len, 0);
        return 0;
    }
    snowflake_decode(id, &ms, &node, &seq);
    dump__fmt_time(t, ms);
    fprintf(f, "id             %llu\ntime           %s (node %u, seq %u)\n", (unsigned long long)id,
            t, node, seq);
    if (dump__msg_decode(id, rec, len, &dm) < 0) {
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
    fprintf(f, "record         %zu bytes stored%s\n", len,
            dm.head_implied ? " (its id and time left out: the key gives both)" : "");
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
        d->doc = jv_obj();
        json_id_fields(d->doc, id);
        return 0;
    }
    snowflake_decode(id, &ms, &node, &seq);
    dump__fmt_time(t, ms);
    fprintf(d->out, "id    %llu\ntime  %s (%llu ms)\nnode  %u\nseq   %u\n", (unsigned long long)id,
            t, (unsigned long long)ms, node, seq);
    return 0;
}
