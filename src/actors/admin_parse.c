#include "actors/admin_parse.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "actors/group.h"
#include "cim.pb.h"
#include "core/chan.h"
#include "core/mem.h"

/* A hex digit's value, or -1 (OpenSSL's). */
static int hexval(int ch)
{
    return OPENSSL_hexchar2int((unsigned char)ch);
}

int admin_split_path(const char *path, size_t len, char *buf, size_t buflen, char **seg,
                     int maxseg)
{
    const char *p = path, *end = path + len;
    size_t o = 0;
    int n = 0;

    if (len == 0 || *p != '/')
        return -1;
    while (p < end) {
        p++; /* the '/' */
        if (n == maxseg || o >= buflen)
            return -1;
        seg[n++] = buf + o;
        while (p < end && *p != '/') {
            int ch = (unsigned char)*p++;
            if (ch == '%') {
                int hi, lo;
                if (end - p < 2 || (hi = hexval(p[0])) < 0 || (lo = hexval(p[1])) < 0)
                    return -1;
                ch = hi << 4 | lo;
                p += 2;
            }
            if (ch == 0 || o + 2 > buflen)
                return -1;
            buf[o++] = (char)ch;
        }
        buf[o++] = '\0';
    }
    return n;
}

int admin_hex32(const char *s, size_t len, uint8_t out[32])
{
    char hex[2 * CHAN_KEY + 1];
    if (len != sizeof(hex) - 1)
        return -1;
    memcpy(hex, s, len);
    hex[len] = '\0';
    return chan_unhex(hex, out) == 0 ? 0 : -1;
}

/* cim.MsgType by name: TEXT..CUSTOM (SYSTEM only through "system": true). */
static int msg_type(const char *name)
{
    static const char *const names[] = {"TEXT", "IMAGE", "AUDIO", "VIDEO",
                                        "FILE", "LOCATION", "CUSTOM"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i]) == 0)
            return cim_MsgType_TEXT + (int)i;
    return -1;
}

/* The body: "body" (text) or "body_b64" (padded base64). @return 0, or the status. */
static int message_body(const char *text, size_t tlen, const char *b64, admin_msg_t *m,
                        uint32_t max, char *why, size_t whylen)
{
    if (text != NULL && b64 != NULL) {
        snprintf(why, whylen, "give body or body_b64, not both");
        return 400;
    }
    if (b64 != NULL) {
        size_t blen = strlen(b64);
        int dec;
        if (blen % 4 != 0) {
            snprintf(why, whylen, "body_b64 is not padded base64");
            return 400;
        }
        if (blen / 4 * 3 > (size_t)max + 2) {
            snprintf(why, whylen, "body over max_msg_bytes (%u)", max);
            return 413;
        }
        m->body = mem_alloc(blen / 4 * 3 + 1);
        dec = blen ? EVP_DecodeBlock(m->body, (const unsigned char *)b64, (int)blen) : 0;
        if (dec < 0 || (blen >= 4 && b64[blen - 1] != '=' && b64[blen - 2] == '=')) {
            snprintf(why, whylen, "body_b64 is not valid base64");
            return 400;
        }
        /* EVP_DecodeBlock counts the padding as zero bytes. */
        m->body_len = (size_t)dec - (blen && b64[blen - 1] == '=') -
                      (blen > 1 && b64[blen - 2] == '=');
    } else {
        m->body_len = text ? tlen : 0;
        m->body = mem_alloc(m->body_len + 1);
        if (m->body_len)
            memcpy(m->body, text, m->body_len);
    }
    if (m->body_len > max) {
        snprintf(why, whylen, "body over max_msg_bytes (%u)", max);
        return 413;
    }
    return 0;
}

int admin_msg_parse(const char *json, size_t len, uint32_t max_body, admin_msg_t *m,
                    char *why, size_t whylen)
{
    const char *from = NULL, *to = NULL, *group = NULL, *type = NULL, *text = NULL,
               *b64 = NULL, *cmid = NULL;
    size_t tlen = 0;
    int transient = 0, system = 0, rc = 400;
    json_error_t err;
    uint64_t gid;
    json_t *j;

    memset(m, 0, sizeof(*m));
    if (len == 0) {
        snprintf(why, whylen, "a JSON object body is required");
        return 400;
    }
    if ((j = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err)) == NULL) {
        snprintf(why, whylen, "malformed JSON: %s (line %d column %d)", err.text, err.line,
                 err.column);
        return 400;
    }
    if (!json_is_object(j)) {
        snprintf(why, whylen, "the body must be a JSON object");
        goto out;
    }
    if (json_unpack_ex(j, &err, JSON_STRICT, "{s:s, s?s, s?s, s?s, s?s%, s?s, s?s, s?b, s?b}",
                       "from", &from, "to", &to, "group", &group, "type", &type, "body", &text,
                       &tlen, "body_b64", &b64, "client_msg_id", &cmid, "transient",
                       &transient, "system", &system) < 0) {
        snprintf(why, whylen, "%s", err.text);
        goto out;
    }
    if (!kv_id_valid(from)) {
        snprintf(why, whylen, "from must be a user id (1..64 bytes of [A-Za-z0-9._@-])");
        goto out;
    }
    if ((to == NULL) == (group == NULL)) {
        snprintf(why, whylen, "give exactly one of to (a user) or group (a group id)");
        goto out;
    }
    if (to != NULL ? !kv_id_valid(to) : group_id_parse(group, &gid) < 0) {
        snprintf(why, whylen, "%s", to != NULL ? "to must be a user id" : "group must be a group id");
        goto out;
    }
    if (system) {
        if (type != NULL && strcmp(type, "SYSTEM") != 0) {
            snprintf(why, whylen, "a system message has type SYSTEM");
            goto out;
        }
        m->msg_type = cim_MsgType_SYSTEM;
    } else if ((m->msg_type = msg_type(type ? type : "TEXT")) < 0) {
        snprintf(why, whylen, "type must be one of TEXT, IMAGE, AUDIO, VIDEO, FILE, LOCATION, "
                              "CUSTOM");
        goto out;
    }
    if (cmid != NULL && (cmid[0] == '\0' || strlen(cmid) > KV_ID_MAX)) {
        snprintf(why, whylen, "client_msg_id must be 1..64 bytes");
        goto out;
    }
    if ((rc = message_body(text, tlen, b64, m, max_body, why, whylen)) != 0)
        goto out;
    snprintf(m->from, sizeof(m->from), "%s", from);
    snprintf(m->to, sizeof(m->to), "%s", to ? to : group);
    snprintf(m->cmid, sizeof(m->cmid), "%s", cmid ? cmid : "");
    m->conv_type = to ? cim_ConvType_DIRECT : cim_ConvType_GROUP;
    m->transient = transient;
    m->system = system;
out:
    if (rc != 0) {
        mem_free(m->body);
        memset(m, 0, sizeof(*m));
    }
    json_decref(j);
    return rc;
}

void admin_msg_free(admin_msg_t *m)
{
    mem_free(m->body);
    m->body = NULL;
}
