/* cli: the one-line output formats (cli_int.h describes them). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/cim/cli_int.h"
#include "core/frame.h"

const char *cli__kind_name(cim_DeviceKind k)
{
    switch (k) {
    case cim_DeviceKind_MOBILE:
        return "mobile";
    case cim_DeviceKind_DESKTOP:
        return "desktop";
    case cim_DeviceKind_WEB:
        return "web";
    case cim_DeviceKind_BOT:
        return "bot";
    default:
        return "unspecified";
    }
}

int cli__kind_parse(const char *s, cim_DeviceKind *out)
{
    static const cim_DeviceKind kinds[] = {cim_DeviceKind_MOBILE, cim_DeviceKind_DESKTOP,
                                           cim_DeviceKind_WEB, cim_DeviceKind_BOT};

    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(s, cli__kind_name(kinds[i])) == 0) {
            *out = kinds[i];
            return 0;
        }
    return -1;
}

const char *cli__conv_name(cim_ConvType t)
{
    return t == cim_ConvType_DIRECT ? "direct" : t == cim_ConvType_GROUP ? "group" : "?";
}

static const char *msg_type_name(cim_MsgType t)
{
    static const char *const names[] = {"?",    "text",     "image",  "audio",  "video",
                                        "file", "location", "custom", "system", "recall"};

    return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

int cli__msg_type_parse(const char *s, cim_MsgType *out)
{
    for (int t = cim_MsgType_TEXT; t <= cim_MsgType_CUSTOM; t++)
        if (strcmp(s, msg_type_name((cim_MsgType)t)) == 0) {
            *out = (cim_MsgType)t;
            return 0;
        }
    return -1;
}

/* "2026-11-22T01:02:32.364Z" */
void cli__fmt_time_ms(uint64_t ms, char *out, size_t n)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    char tmp[32];

    if (gmtime_r(&s, &tm) == NULL || strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf(out, n, "%" PRIu64 " ms", ms);
        return;
    }
    snprintf(out, n, "%s.%03uZ", tmp, (unsigned)(ms % 1000));
}

/* Whether @p b is text worth printing as is: valid UTF-8 without control characters
 * other than tab and newline. */
static bool printable(const uint8_t *b, size_t n)
{
    size_t i = 0, k;

    while (i < n) {
        uint8_t ch = b[i];
        if (ch < 0x80) {
            if ((ch < 0x20 && ch != '\t' && ch != '\n') || ch == 0x7f)
                return false;
            i++;
            continue;
        }
        k = (ch & 0xe0) == 0xc0 ? 1 : (ch & 0xf0) == 0xe0 ? 2 : (ch & 0xf8) == 0xf0 ? 3 : 0;
        if (k == 0 || k >= n - i) /* a lead byte needs k more bytes after it */
            return false;
        for (size_t j = 1; j <= k; j++)
            if ((b[i + j] & 0xc0) != 0x80)
                return false;
        i += k + 1;
    }
    return true;
}

static const char *group_event_name(cim_GroupEventKind k)
{
    static const char *const names[] = {"event", "created", "joined", "added",
                                        "left",  "kicked",  "dismissed"};

    return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "event";
}

#define HEX_SHOWN 32 /* bytes of a binary body shown in hex */

/* "<N bytes: 0001ff...>" */
static void print_hex_body(FILE *f, const uint8_t *b, size_t n)
{
    if (n == 0) {
        fputs("<empty>", f);
        return;
    }
    fprintf(f, "<%zu bytes: ", n);
    for (size_t i = 0; i < n && i < HEX_SHOWN; i++)
        fprintf(f, "%02x", b[i]);
    fputs(n > HEX_SHOWN ? "...>" : ">", f);
}

/* Text on one line: backslash and newline escaped (\\, \n). With @p max > 0, at most
 * about @p max bytes, cut at a character boundary and followed by "...". */
static void print_text_body(FILE *f, const uint8_t *b, size_t n, size_t max)
{
    bool cut = false;

    if (max > 0 && n > max) {
        n = max;
        while (n > 0 && (b[n] & 0xc0) == 0x80) /* not inside a UTF-8 sequence */
            n--;
        cut = true;
    }
    for (size_t i = 0; i < n; i++) {
        if (b[i] == '\\')
            fputs("\\\\", f);
        else if (b[i] == '\n')
            fputs("\\n", f);
        else
            fputc(b[i], f);
    }
    if (cut)
        fputs("...", f);
}

/* A SYSTEM message's GroupEvent: "<group 42 created by alice: bob carol>". */
static bool print_group_event(FILE *f, const cim_Message *m, const uint8_t *b, size_t n)
{
    cim_GroupEvent *ev = calloc(1, sizeof(*ev)); /* 65 KB of user ids: not on the stack */

    if (ev == NULL || cimc_decode(cim_GroupEvent_fields, b, n, ev) < 0) {
        free(ev);
        return false;
    }
    fprintf(f, "<group %s %s by %s", ev->has_group ? ev->group.group_id : m->to,
            group_event_name(ev->kind), ev->actor);
    for (pb_size_t i = 0; i < ev->users_count; i++)
        fprintf(f, "%s%s", i == 0 ? ": " : " ", ev->users[i]);
    fputc('>', f);
    free(ev);
    return true;
}

/* A RECALL message's RecallEvent: "<recall of 123 by alice>". */
static bool print_recall_event(FILE *f, const uint8_t *b, size_t n)
{
    cim_RecallEvent ev = cim_RecallEvent_init_zero;

    if (cimc_decode(cim_RecallEvent_fields, b, n, &ev) < 0)
        return false;
    fprintf(f, "<recall of %" PRIu64 " by %s>", ev.msg_id, ev.by);
    return true;
}

/* A message's body as the one-line formats show it (@p max: as print_text_body). */
static void print_body(FILE *f, const cim_Message *m, const uint8_t *body, size_t len, size_t max)
{
    if (m->flags & 1u)
        fputs("<recalled>", f);
    else if (m->msg_type == cim_MsgType_SYSTEM && print_group_event(f, m, body, len))
        ;
    else if (m->msg_type == cim_MsgType_RECALL && print_recall_event(f, body, len))
        ;
    else if (len > 0 && m->msg_type != cim_MsgType_SYSTEM && m->msg_type != cim_MsgType_RECALL &&
             printable(body, len))
        print_text_body(f, body, len, max);
    else
        print_hex_body(f, body, len);
}

/* One message, one line (the format in the comment at the top). */
void cli__print_msg(FILE *f, const cim_Message *m, const uint8_t *body, size_t len)
{
    char when[40];

    cli__fmt_time_ms(m->time_ms, when, sizeof(when));
    fprintf(f, "%" PRIu64 " %s %s -> %s%s [%s] ", m->msg_id, when, m->from,
            m->conv_type == cim_ConvType_GROUP ? "#" : "", m->to, msg_type_name(m->msg_type));
    print_body(f, m, body, len, 0);
    fputc('\n', f);
}

/* A transient CUSTOM message (msg_id 0: PROTOCOL-NOTES 11): the typing convention. */
bool cli__is_typing(const cim_Message *m)
{
    return m->msg_id == 0 && m->msg_type == cim_MsgType_CUSTOM;
}

/* A pushed message: typing indicators and recalls as tagged lines, the rest as print_msg. */
void cli__print_pushed_msg(FILE *f, const cim_Message *m, const uint8_t *body, size_t len)
{
    cim_RecallEvent ev = cim_RecallEvent_init_zero;

    if (cli__is_typing(m)) {
        fprintf(f, "[typing] %s -> %s%s", m->from, m->conv_type == cim_ConvType_GROUP ? "#" : "",
                m->to);
        if (len > 0 && !(len == 6 && memcmp(body, "typing", 6) == 0)) {
            fputs(" (", f); /* some other signal: show what it says */
            if (printable(body, len))
                print_text_body(f, body, len, 64);
            else
                print_hex_body(f, body, len);
            fputc(')', f);
        }
        fputc('\n', f);
    } else if (m->msg_type == cim_MsgType_RECALL &&
               cimc_decode(cim_RecallEvent_fields, body, len, &ev) == 0) {
        fprintf(f, "[recall] %" PRIu64 " by %s\n", ev.msg_id, ev.by);
    } else {
        cli__print_msg(f, m, body, len);
    }
}

/* An EVENT, one line. A READ names the conversation from the reader's side: "alice read
 * bob" whether this is alice's other device (peer bob) or bob's (peer alice). */
void cli__print_event(const cli_t *cli, FILE *f, const cim_Event *e)
{
    const char *conv = e->peer;

    if (e->kind == cim_EventKind_READ) {
        if (e->conv_type == cim_ConvType_DIRECT && strcmp(e->peer, e->user) == 0 &&
            cli->user != NULL && strcmp(e->user, cli->user) != 0)
            conv = cli->user; /* the peer's event: the conversation with me */
        fprintf(f, "[read] %s read %s%s up to %" PRIu64 "\n", e->user,
                e->conv_type == cim_ConvType_GROUP ? "#" : "", conv, e->up_to_msg_id);
    } else if (e->kind == cim_EventKind_PRESENCE) {
        fprintf(f, "[presence] %s %s\n", e->user, e->online ? "online" : "offline");
    } else {
        fprintf(f, "[event %d] %s %s\n", (int)e->kind, e->user, e->peer);
    }
}

void cli__print_push(const cli_t *cli, FILE *f, const cimc_push_t *p)
{
    if (f == stdout && cli->in_shell)
        cli__edit_hide(); /* output between keystrokes: clear the prompt first */
    switch (p->type) {
    case FT_PUSH:
        cli__print_pushed_msg(f, &p->u.msg, p->body_data, p->body_len);
        break;
    case FT_EVENT:
        cli__print_event(cli, f, &p->u.event);
        break;
    case FT_BYE:
        fprintf(f, "[bye] %s: %s\n", cimc_code_str(p->u.bye.code), p->u.bye.reason);
        break;
    default:
        break;
    }
    fflush(f);
}

/* A word as is, or in double quotes (\" \\ \n escaped) when it is empty or has blanks,
 * quotes, backslashes or control characters: the shell's quoting. */
static void print_word(FILE *f, const char *s)
{
    bool plain = s[0] != '\0';

    for (const unsigned char *p = (const unsigned char *)s; *p != '\0' && plain; p++)
        if (*p <= ' ' || *p == '"' || *p == '\\' || *p == 0x7f)
            plain = false;
    if (plain) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p < ' ' || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* "<id> <name> owner=<user> members=<n> open|closed" */
void cli__print_group(FILE *f, const cim_Group *g)
{
    fprintf(f, "%s ", g->group_id);
    print_word(f, g->name);
    fprintf(f, " owner=%s members=%" PRIu32 " %s\n", g->owner, g->member_count,
            g->open ? "open" : "closed");
}

#define SUMMARY_MAX 60 /* bytes of a last message's text shown by convs */

/* "<type> <peer> unread=<n> read=<id> [peer_read=<id>] last: <id> <time> <from> [<type>]
 * <body, cut>" (or "last: -"). */
void cli__print_conv(FILE *f, const cim_Conversation *cv, const uint8_t *body, size_t len)
{
    char when[40];

    fprintf(f, "%s %s unread=%" PRIu32 " read=%" PRIu64, cli__conv_name(cv->conv_type), cv->peer,
            cv->unread, cv->read_up_to);
    if (cv->conv_type == cim_ConvType_DIRECT)
        fprintf(f, " peer_read=%" PRIu64, cv->peer_read_up_to);
    if (!cv->has_last || cv->last.msg_id == 0) {
        fputs(" last: -\n", f);
        return;
    }
    cli__fmt_time_ms(cv->last.time_ms, when, sizeof(when));
    fprintf(f, " last: %" PRIu64 " %s %s [%s] ", cv->last.msg_id, when, cv->last.from,
            msg_type_name(cv->last.msg_type));
    print_body(f, &cv->last, body, len, SUMMARY_MAX);
    fputc('\n', f);
}
