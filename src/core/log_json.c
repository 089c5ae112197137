/* log, JSON lines: one jansson object per line (the format is documented in log.h). Kept
 * apart from log.c so that only the programs that call log_use_json() link jansson. */
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/log_int.h"

/* A message cut to this many bytes always fits a line, escaped (6 bytes a byte at worst). */
#define CUT_MSG 255

static bool is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9') || c == '.';
}

/* A decimal integer (optional '-', at most 18 digits: always fits an int64) as a number,
 * anything else as a string. */
static json_t *value_of(const char *v, size_t len)
{
    size_t i = len > 0 && v[0] == '-' ? 1 : 0;
    char num[24];

    if (len > i && len - i <= 18 && strspn(v + i, "0123456789") >= len - i) {
        memcpy(num, v, len);
        num[len] = '\0';
        return json_integer(strtoll(num, NULL, 10));
    }
    return json_stringn(v, len);
}

/* Add every name=value word of @p msg to @p fields (log.h has the rules). */
static void add_fields(json_t *fields, const char *msg)
{
    const char *p = msg;

    while (*p != '\0') {
        const char *name = p, *v, *end;
        size_t nlen;

        if (!is_name_start(*p)) {
            p += strcspn(p, " ");
            p += strspn(p, " ");
            continue;
        }
        while (is_name_char(*p))
            p++;
        nlen = (size_t)(p - name);
        if (*p != '=') {
            p += strcspn(p, " ");
            p += strspn(p, " ");
            continue;
        }
        v = ++p;
        if (*v == '"' && (end = strchr(v + 1, '"')) != NULL) {
            v++;
            p = end + 1;
        } else {
            end = v + strcspn(v, " ");
            p = end;
            if (end > v && (end[-1] == ',' || end[-1] == ';'))
                end--;
            if (end == v) /* "name=" says nothing: prose, as in "set LimitNOFILE=" */
                continue;
        }
        /* A field that cannot be made (OOM) is left out: the event still has the text. */
        char key[64];
        if (nlen < sizeof(key)) {
            memcpy(key, name, nlen);
            key[nlen] = '\0';
            (void)json_object_set_new(fields, key, value_of(v, (size_t)(end - v)));
        }
        if (*p != '\0' && *p != ' ')
            p += strcspn(p, " ");
        p += strspn(p, " ");
    }
}

/* jansson refuses strings that are not UTF-8: replace every byte of a message that is not
 * with '?' (a peer-supplied name logged as it came may be anything). */
static const char *valid_utf8(const char *msg, char *buf, size_t buflen)
{
    size_t n = strlen(msg);
    json_t *probe = json_stringn(msg, n);

    if (probe != NULL) {
        json_decref(probe);
        return msg;
    }
    n = n < buflen - 1 ? n : buflen - 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)msg[i] < 0x80 ? msg[i] : '?';
    buf[n] = '\0';
    return buf;
}

static size_t dump(char *line, size_t cap, int level, const char *thread, const char *when,
                   const char *msg, bool with_fields)
{
    json_t *fields = json_object(), *obj;
    size_t n;

    if (fields != NULL && with_fields)
        add_fields(fields, msg);
    obj = json_pack("{s:s, s:s, s:s, s:s, s:o*}", "time", when, "level",
                    log__level_name(level), "thread", thread, "event", msg, "fields", fields);
    if (obj == NULL)
        return 0;
    n = json_dumpb(obj, line, cap, JSON_COMPACT);
    json_decref(obj);
    return n <= cap ? n : 0;
}

static size_t format_json(char *line, size_t cap, int level, const char *thread,
                          const struct timespec *ts, const char *msg)
{
    char when[40], clean[1024], cut[CUT_MSG + 1];
    size_t n, len;

    (void)log__time(when, sizeof(when), ts);
    msg = valid_utf8(msg, clean, sizeof(clean));
    if ((n = dump(line, cap, level, thread, when, msg, true)) > 0)
        return n;
    /* Too long once escaped (or out of memory): the message's start alone, no fields, cut
     * where no UTF-8 sequence is split. */
    len = strlen(msg);
    if (len > CUT_MSG) {
        len = CUT_MSG;
        while (len > 0 && ((unsigned char)msg[len] & 0xc0) == 0x80)
            len--;
    }
    memcpy(cut, msg, len);
    cut[len] = '\0';
    return dump(line, cap, level, thread, when, cut, false);
}

void log_use_json(void)
{
    /* Seed jansson's hash now, on the one thread that runs at startup, rather than racing
     * for it in the first json_object() of several threads. */
    json_object_seed(0);
    log__fmt = format_json;
}
