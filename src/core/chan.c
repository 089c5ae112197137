#include "core/chan.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "core/frame.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"

#define TH_LABEL "cim/1 handshake"
#define KEYS_INFO "cim/1 keys"
#define NONCE_LEN 12
#define TH_LEN 32
#define IDENTITY_FILE_MAX 4096 /* a PEM Ed25519 key is ~120 bytes */

/* Keying an AES-256-GCM context (the key schedule and GHASH's table) costs as much as
 * sealing a 200-byte frame: 230 of 470 ns here. So a thread keeps keyed contexts for the
 * connections it served last, one slot per connection serial (direct-mapped, per
 * direction); a frame of a connection whose slot holds its key sets only the nonce.
 * Made on first use: a thread's contexts are at most 2 x KEYED_SLOTS x ~1.1 KB, and as
 * many as the connections that were active, however many are idle. */
#define KEYED_BITS 12
#define KEYED_SLOTS (1u << KEYED_BITS)

typedef struct keyed {
    uint64_t serial;    /* the key of this chan_t serial is in c; 0: no key yet */
    EVP_CIPHER_CTX *c;
} keyed_t;

struct chan_ctx {
    EVP_CIPHER_CTX *seal; /* AES-256-GCM encryption, re-keyed per frame (no serial) */
    EVP_CIPHER_CTX *open; /* AES-256-GCM decryption, re-keyed per frame (no serial) */
    keyed_t *kseal, *kopen; /* KEYED_SLOTS each, or NULL until first used */
};

static _Atomic uint64_t serials = 1; /* the next chan_t serial */

struct chan_identity {
    EVP_PKEY *key;          /* Ed25519 private key */
    uint8_t pub[CHAN_KEY];  /* its raw public half */
};

/* Fetched once by chan_global_init before any other thread runs, then only read: an
 * implicit fetch per frame costs ~3x and takes a lock (DESIGN.md, pitfalls). */
static EVP_CIPHER *aes_gcm;
static EVP_MD *sha256;
static EVP_KDF *hkdf;

/* Empty OpenSSL's error queue into one DEBUG line and return RC_ECRYPTO. The queue is
 * per thread and must be drained whatever the log level, or it grows with every failure.
 * DEBUG, not WARN: most failures here are a peer's doing (bad tag, bad key) and must not
 * let a peer flood the log. */
static int crypto_fail(const char *what)
{
    char line[512], err[256];
    size_t n = 0;
    unsigned long e;

    line[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        if (log_level < LOG_LVL_DEBUG || n >= sizeof(line) - 3)
            continue;
        ERR_error_string_n(e, err, sizeof(err));
        int k = snprintf(line + n, sizeof(line) - n, "%s%s", n ? "; " : "", err);
        if (k < 0)
            continue;
        n = n + (size_t)k >= sizeof(line) ? sizeof(line) - 1 : n + (size_t)k;
    }
    LOG_DEBUG("chan: %s failed%s%s", what, n ? ": " : "", line);
    return RC_ECRYPTO;
}

int chan_global_init(void)
{
    EVP_KEYMGMT *km = NULL;
    int rc = RC_ECRYPTO;

    if (aes_gcm != NULL)
        return 0;
    if ((aes_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL)) == NULL ||
        (sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL ||
        (hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL) {
        rc = crypto_fail("fetching AES-256-GCM, SHA256 and HKDF");
        goto out;
    }
    /* Fail at startup, not at the first handshake, when a provider lacks a curve. */
    if ((km = EVP_KEYMGMT_fetch(NULL, "X25519", NULL)) == NULL) {
        rc = crypto_fail("fetching X25519");
        goto out;
    }
    EVP_KEYMGMT_free(km);
    km = NULL;
    if ((km = EVP_KEYMGMT_fetch(NULL, "ED25519", NULL)) == NULL) {
        rc = crypto_fail("fetching ED25519");
        goto out;
    }
    rc = 0;
out:
    EVP_KEYMGMT_free(km);
    if (rc < 0) {
        LOG_ERROR("chan: OpenSSL lacks AES-256-GCM, SHA256, HKDF, X25519 or Ed25519");
        chan_global_free();
    }
    return rc;
}

void chan_global_free(void)
{
    EVP_CIPHER_free(aes_gcm);
    EVP_MD_free(sha256);
    EVP_KDF_free(hkdf);
    aes_gcm = NULL;
    sha256 = NULL;
    hkdf = NULL;
}

static EVP_CIPHER_CTX *cipher_ctx_new(int enc)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();

    /* Bind the cipher once; per frame only key and nonce change (EVP_*Init_ex with a
     * NULL cipher). A failure here is OOM or a missing chan_global_init: abort. */
    if (c == NULL || aes_gcm == NULL ||
        EVP_CipherInit_ex2(c, aes_gcm, NULL, NULL, enc, NULL) != 1) {
        (void)crypto_fail("creating an AES-256-GCM context");
        LOG_ERROR("chan: cannot create a cipher context (OOM, or chan_global_init not run)");
        abort();
    }
    return c;
}

chan_ctx_t *chan_ctx_new(void)
{
    chan_ctx_t *ctx = mem_alloc(sizeof(*ctx));

    ctx->seal = cipher_ctx_new(1);
    ctx->open = cipher_ctx_new(0);
    ctx->kseal = ctx->kopen = NULL;
    return ctx;
}

static void keyed_free(keyed_t *tab)
{
    if (tab == NULL)
        return;
    for (size_t i = 0; i < KEYED_SLOTS; i++)
        EVP_CIPHER_CTX_free(tab[i].c); /* cleanses the key schedule */
    mem_free(tab);
}

void chan_ctx_free(chan_ctx_t *ctx)
{
    if (ctx == NULL)
        return;
    EVP_CIPHER_CTX_free(ctx->seal);
    EVP_CIPHER_CTX_free(ctx->open);
    keyed_free(ctx->kseal);
    keyed_free(ctx->kopen);
    mem_free(ctx);
}

/* The slot of @p serial: Fibonacci hashing, so consecutive serials spread. */
static size_t slot_of(uint64_t serial)
{
    return (size_t)((serial * 0x9e3779b97f4a7c15ULL) >> (64 - KEYED_BITS));
}

/* @p serial's slot in @p *tab (made on first use), with a context in it. */
static keyed_t *slot(keyed_t **tab, int enc, uint64_t serial)
{
    keyed_t *k;

    if (*tab == NULL)
        *tab = mem_calloc(KEYED_SLOTS * sizeof(**tab));
    k = &(*tab)[slot_of(serial)];
    if (k->c == NULL)
        k->c = cipher_ctx_new(enc);
    return k;
}

/* The context to seal (@p enc 1) or open a frame of @p ch with, and the key its Init
 * must be given: NULL when it holds @p key already. *@p kept: the slot to mark once
 * keyed (NULL: the shared context, re-keyed every frame). */
static EVP_CIPHER_CTX *pick(chan_ctx_t *ctx, int enc, const chan_t *ch, const uint8_t *key,
                            const uint8_t **init_key, keyed_t **kept)
{
    keyed_t *k;

    *init_key = key;
    *kept = NULL;
    if (ch->serial == 0) /* keys set by hand (tests), not by a handshake */
        return enc ? ctx->seal : ctx->open;
    k = slot(enc ? &ctx->kseal : &ctx->kopen, enc, ch->serial);
    if (k->serial == ch->serial)
        *init_key = NULL;
    k->serial = 0; /* until this frame's Init succeeded */
    *kept = k;
    return k->c;
}

static void forget(keyed_t *tab, uint64_t serial)
{
    keyed_t *k;

    if (tab == NULL || serial == 0)
        return;
    k = &tab[slot_of(serial)];
    if (k->serial == serial) {
        EVP_CIPHER_CTX_free(k->c);
        k->c = NULL;
        k->serial = 0;
    }
}

void chan_forget(chan_ctx_t *ctx, const chan_t *ch)
{
    if (ctx == NULL)
        return;
    forget(ctx->kseal, ch->serial);
    forget(ctx->kopen, ch->serial);
}

int chan_random(uint8_t *out, size_t n)
{
    while (n > 0) {
        int k = n > INT_MAX ? INT_MAX : (int)n;
        if (RAND_bytes(out, k) != 1)
            return crypto_fail("RAND_bytes");
        out += k;
        n -= (size_t)k;
    }
    return 0;
}

/* ---- identity ---------------------------------------------------------------------- */

static int identity_wrap(EVP_PKEY *key, chan_identity_t **out)
{
    size_t len = CHAN_KEY;
    chan_identity_t *id;

    if (!EVP_PKEY_is_a(key, "ED25519")) {
        LOG_ERROR("chan: the identity key is not an Ed25519 key");
        return RC_ECRYPTO;
    }
    id = mem_alloc(sizeof(*id));
    if (EVP_PKEY_get_raw_public_key(key, id->pub, &len) != 1 || len != CHAN_KEY) {
        mem_free(id);
        return crypto_fail("reading the identity public key");
    }
    id->key = key;
    *out = id;
    return 0;
}

static EVP_PKEY *ed25519_generate(void)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

    if (key == NULL)
        (void)crypto_fail("generating an Ed25519 key");
    return key;
}

chan_identity_t *chan_identity_generate(void)
{
    EVP_PKEY *key = ed25519_generate();
    chan_identity_t *id = NULL;

    if (key == NULL || identity_wrap(key, &id) < 0) {
        LOG_ERROR("chan: cannot generate an identity key");
        abort();
    }
    return id;
}

/* PEM_read_bio_PrivateKey's default callback prompts on the terminal for an encrypted
 * key; a daemon must fail instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static int identity_read(int fd, const char *path, chan_identity_t **out)
{
    uint8_t buf[IDENTITY_FILE_MAX];
    EVP_PKEY *key = NULL;
    BIO *bio = NULL;
    struct stat st;
    size_t len = 0;
    ssize_t k;
    int rc;

    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    if ((st.st_mode & 077) != 0)
        LOG_WARN("chan: identity key %s is accessible by group or others (mode %03o)", path,
                 (unsigned)(st.st_mode & 0777));
    for (;;) {
        k = read(fd, buf + len, sizeof(buf) - len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            rc = -errno;
            goto out;
        }
        if (k == 0)
            break;
        len += (size_t)k;
        if (len == sizeof(buf)) {
            LOG_ERROR("chan: identity key %s is too large to be an Ed25519 key", path);
            rc = RC_ECRYPTO;
            goto out;
        }
    }
    if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL) {
        rc = crypto_fail("BIO_new_mem_buf");
        goto out;
    }
    if ((key = PEM_read_bio_PrivateKey_ex(bio, NULL, no_passphrase, NULL, NULL, NULL)) ==
        NULL) {
        rc = crypto_fail("reading the identity key");
        LOG_ERROR("chan: %s is not a readable PEM private key", path);
        goto out;
    }
    if ((rc = identity_wrap(key, out)) < 0)
        goto out;
    key = NULL; /* owned by *out */
out:
    EVP_PKEY_free(key);
    BIO_free(bio);
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* fsync the directory holding @p path so the new file's name survives a power loss: a lost
 * identity would change the key every client has pinned. */
static int sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = NULL;
    int fd = -1, rc = 0;

    if (slash == NULL)
        dir = mem_strdup(".");
    else if (slash == path)
        dir = mem_strdup("/");
    else {
        dir = mem_strdup(path);
        dir[slash - path] = '\0';
    }
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(fd) < 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    mem_free(dir);
    return rc;
}

/* Create @p path with a fresh key: O_EXCL and mode 0600 from the first byte, so the key is
 * never readable by others, not even briefly. -EEXIST when someone else created it. */
static int identity_create(const char *path, chan_identity_t **out)
{
    chan_identity_t *id = NULL;
    EVP_PKEY *key = NULL;
    BIO *bio = NULL;
    char *pem;
    long pem_len;
    int fd = -1, rc;
    bool created = false;

    if ((key = ed25519_generate()) == NULL) {
        rc = RC_ECRYPTO;
        goto out;
    }
    /* A secure-memory BIO clears its buffer when freed. */
    if ((bio = BIO_new(BIO_s_secmem())) == NULL ||
        PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1 ||
        (pem_len = BIO_get_mem_data(bio, &pem)) <= 0) {
        rc = crypto_fail("encoding the identity key");
        goto out;
    }
    if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
        rc = -errno;
        goto out;
    }
    created = true;
    if ((rc = write_all(fd, (const uint8_t *)pem, (size_t)pem_len)) < 0)
        goto out;
    if (fsync(fd) < 0) {
        rc = -errno;
        goto out;
    }
    rc = close(fd) < 0 ? -errno : 0;
    fd = -1; /* close(2) releases the fd even when it fails */
    if (rc < 0)
        goto out;
    if ((rc = sync_dir(path)) < 0)
        goto out;
    if ((rc = identity_wrap(key, &id)) < 0)
        goto out;
    key = NULL; /* owned by id */
    LOG_INFO("chan: created identity key %s", path);
    *out = id;
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0 && created) {
        /* A truncated key file would stop every later start: leave nothing behind. */
        (void)unlink(path); /* best effort: the error is already being returned */
    }
    EVP_PKEY_free(key);
    BIO_free(bio);
    return rc;
}

static int identity_get(const char *path, bool create, chan_identity_t **out,
                        bool *created)
{
    chan_identity_t *id = NULL;
    bool made = false;
    int fd, rc;

    for (;;) {
        if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
            rc = identity_read(fd, path, &id);
            close(fd);
            break;
        }
        rc = -errno;
        if (rc != -ENOENT || !create)
            break;
        rc = identity_create(path, &id);
        made = rc == 0;
        if (rc != -EEXIST)
            break;
        /* Lost a race with another creator: read theirs. */
    }
    /* The caller reports rc (-ENOENT may well be expected); what rc cannot say, such as
     * "not an Ed25519 key", was logged where it was found. */
    if (rc < 0)
        return rc;
    if (created != NULL)
        *created = made;
    *out = id;
    return 0;
}

int chan_identity_load(const char *path, chan_identity_t **out, bool *created)
{
    return identity_get(path, true, out, created);
}

int chan_identity_open(const char *path, chan_identity_t **out)
{
    return identity_get(path, false, out, NULL);
}

void chan_identity_public(const chan_identity_t *id, uint8_t out[CHAN_KEY])
{
    memcpy(out, id->pub, CHAN_KEY);
}

void chan_identity_free(chan_identity_t *id)
{
    if (id == NULL)
        return;
    EVP_PKEY_free(id->key);
    mem_free(id);
}

/* ---- handshake --------------------------------------------------------------------- */

static int x25519_generate(EVP_PKEY **key, uint8_t pub[CHAN_KEY])
{
    size_t len = CHAN_KEY;

    if ((*key = EVP_PKEY_Q_keygen(NULL, NULL, "X25519")) == NULL)
        return crypto_fail("generating an X25519 key");
    if (EVP_PKEY_get_raw_public_key(*key, pub, &len) != 1 || len != CHAN_KEY) {
        EVP_PKEY_free(*key);
        *key = NULL;
        return crypto_fail("reading an X25519 public key");
    }
    return 0;
}

/* shared = X25519(own, peer). An all-zero result (a low-order peer key) is an error, as
 * PROTOCOL.md §2 requires; the comparison runs in constant time. */
static int x25519_derive(EVP_PKEY *own, const uint8_t peer_pub[CHAN_KEY],
                         uint8_t shared[CHAN_KEY])
{
    static const uint8_t zero[CHAN_KEY];
    EVP_PKEY *peer = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    size_t len = CHAN_KEY;
    int rc = RC_ECRYPTO;

    if ((peer = EVP_PKEY_new_raw_public_key_ex(NULL, "X25519", NULL, peer_pub, CHAN_KEY)) ==
        NULL) {
        rc = crypto_fail("importing the peer's X25519 key");
        goto out;
    }
    if ((pctx = EVP_PKEY_CTX_new_from_pkey(NULL, own, NULL)) == NULL ||
        EVP_PKEY_derive_init(pctx) != 1 || EVP_PKEY_derive_set_peer(pctx, peer) != 1 ||
        EVP_PKEY_derive(pctx, shared, &len) != 1 || len != CHAN_KEY) {
        rc = crypto_fail("X25519");
        goto out;
    }
    if (CRYPTO_memcmp(shared, zero, CHAN_KEY) == 0) {
        rc = crypto_fail("X25519 (all-zero shared secret)");
        goto out;
    }
    rc = 0;
out:
    if (rc < 0)
        OPENSSL_cleanse(shared, CHAN_KEY);
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(peer);
    return rc;
}

/* th = SHA-256("cim/1 handshake" || hello || server_key || server_random || identity). */
static int transcript(const uint8_t *hello, size_t hello_len, const uint8_t server_key[CHAN_KEY],
                      const uint8_t server_random[CHAN_RANDOM],
                      const uint8_t identity[CHAN_KEY], uint8_t th[TH_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int len = 0;
    int rc = RC_ECRYPTO;

    if (md == NULL || EVP_DigestInit_ex2(md, sha256, NULL) != 1 ||
        EVP_DigestUpdate(md, TH_LABEL, sizeof(TH_LABEL) - 1) != 1 ||
        (hello_len > 0 && EVP_DigestUpdate(md, hello, hello_len) != 1) ||
        EVP_DigestUpdate(md, server_key, CHAN_KEY) != 1 ||
        EVP_DigestUpdate(md, server_random, CHAN_RANDOM) != 1 ||
        EVP_DigestUpdate(md, identity, CHAN_KEY) != 1 || EVP_DigestFinal_ex(md, th, &len) != 1 ||
        len != TH_LEN) {
        rc = crypto_fail("the transcript hash");
        goto out;
    }
    rc = 0;
out:
    EVP_MD_CTX_free(md);
    return rc;
}

/* okm = HKDF-SHA256(IKM = shared, salt = th, info = "cim/1 keys", L = 64). */
static int derive_keys(const uint8_t shared[CHAN_KEY], const uint8_t th[TH_LEN],
                       uint8_t okm[2 * CHAN_KEY])
{
    char digest[] = "SHA256";
    char info[] = KEYS_INFO;
    EVP_KDF_CTX *kctx = NULL;
    OSSL_PARAM params[5];
    int rc = RC_ECRYPTO;

    /* The params only point at their values; OpenSSL copies what it keeps. */
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)(uintptr_t)shared,
                                                  CHAN_KEY);
    params[2] =
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)(uintptr_t)th, TH_LEN);
    params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, sizeof(info) - 1);
    params[4] = OSSL_PARAM_construct_end();
    if ((kctx = EVP_KDF_CTX_new(hkdf)) == NULL ||
        EVP_KDF_derive(kctx, okm, 2 * CHAN_KEY, params) != 1) {
        rc = crypto_fail("HKDF");
        goto out;
    }
    rc = 0;
out:
    EVP_KDF_CTX_free(kctx); /* clears the key material it copied */
    return rc;
}

int chan_server_handshake(const chan_identity_t *id, const uint8_t *hello, size_t hello_len,
                          const uint8_t client_key[CHAN_KEY], uint8_t server_key[CHAN_KEY],
                          uint8_t server_random[CHAN_RANDOM], uint8_t sig[CHAN_SIG],
                          chan_t *ch)
{
    uint8_t shared[CHAN_KEY], th[TH_LEN], okm[2 * CHAN_KEY];
    EVP_PKEY *eph = NULL;
    EVP_MD_CTX *md = NULL;
    size_t sig_len = CHAN_SIG;
    int rc;

    if ((rc = x25519_generate(&eph, server_key)) < 0)
        goto out;
    if ((rc = chan_random(server_random, CHAN_RANDOM)) < 0)
        goto out;
    if ((rc = x25519_derive(eph, client_key, shared)) < 0)
        goto out;
    if ((rc = transcript(hello, hello_len, server_key, server_random, id->pub, th)) < 0)
        goto out;
    /* Ed25519 is one-shot: EVP_DigestSign with no digest. The identity key is shared by
     * every thread read-only; a sign context per call keeps it that way. */
    if ((md = EVP_MD_CTX_new()) == NULL ||
        EVP_DigestSignInit_ex(md, NULL, NULL, NULL, NULL, id->key, NULL) != 1 ||
        EVP_DigestSign(md, sig, &sig_len, th, TH_LEN) != 1 || sig_len != CHAN_SIG) {
        rc = crypto_fail("signing the transcript");
        goto out;
    }
    if ((rc = derive_keys(shared, th, okm)) < 0)
        goto out;
    /* The server seals with the s→c key and opens with the c→s key. */
    memcpy(ch->rx_key, okm, CHAN_KEY);
    memcpy(ch->tx_key, okm + CHAN_KEY, CHAN_KEY);
    ch->tx_ctr = 0;
    ch->rx_ctr = 0;
    ch->serial = atomic_fetch_add_explicit(&serials, 1, memory_order_relaxed);
out:
    OPENSSL_cleanse(shared, sizeof(shared));
    OPENSSL_cleanse(okm, sizeof(okm));
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(eph);
    return rc;
}

int chan_client_start(chan_client_t *c)
{
    EVP_PKEY *eph = NULL;
    int rc;

    c->eph = NULL;
    if ((rc = x25519_generate(&eph, c->key)) < 0)
        return rc;
    if ((rc = chan_random(c->random, CHAN_RANDOM)) < 0) {
        EVP_PKEY_free(eph);
        return rc;
    }
    c->eph = eph;
    return 0;
}

int chan_client_finish(chan_client_t *c, const uint8_t *hello, size_t hello_len,
                       const uint8_t server_key[CHAN_KEY],
                       const uint8_t server_random[CHAN_RANDOM],
                       const uint8_t identity[CHAN_KEY], const uint8_t sig[CHAN_SIG],
                       const uint8_t *pinned, chan_t *ch)
{
    uint8_t shared[CHAN_KEY], th[TH_LEN], okm[2 * CHAN_KEY];
    EVP_PKEY *idkey = NULL;
    EVP_MD_CTX *md = NULL;
    int rc;

    if (c->eph == NULL) {
        rc = RC_ECRYPTO;
        goto out;
    }
    if (pinned != NULL && CRYPTO_memcmp(identity, pinned, CHAN_KEY) != 0) {
        rc = RC_EKEY;
        goto out;
    }
    if ((rc = transcript(hello, hello_len, server_key, server_random, identity, th)) < 0)
        goto out;
    if ((idkey = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, identity, CHAN_KEY)) ==
        NULL) {
        rc = crypto_fail("importing the server identity");
        goto out;
    }
    if ((md = EVP_MD_CTX_new()) == NULL ||
        EVP_DigestVerifyInit_ex(md, NULL, NULL, NULL, NULL, idkey, NULL) != 1 ||
        EVP_DigestVerify(md, sig, CHAN_SIG, th, TH_LEN) != 1) {
        rc = crypto_fail("verifying the server signature");
        goto out;
    }
    if ((rc = x25519_derive(c->eph, server_key, shared)) < 0)
        goto out;
    if ((rc = derive_keys(shared, th, okm)) < 0)
        goto out;
    /* The client seals with the c→s key and opens with the s→c key. */
    memcpy(ch->tx_key, okm, CHAN_KEY);
    memcpy(ch->rx_key, okm + CHAN_KEY, CHAN_KEY);
    ch->tx_ctr = 0;
    ch->rx_ctr = 0;
    ch->serial = atomic_fetch_add_explicit(&serials, 1, memory_order_relaxed);
out:
    OPENSSL_cleanse(shared, sizeof(shared));
    OPENSSL_cleanse(okm, sizeof(okm));
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(idkey);
    return rc;
}

void chan_client_close(chan_client_t *c)
{
    EVP_PKEY_free(c->eph);
    c->eph = NULL;
}

/* ---- sealed frames ----------------------------------------------------------------- */

static void make_nonce(uint8_t nonce[NONCE_LEN], uint64_t ctr)
{
    memset(nonce, 0, 4);
    for (int i = 0; i < 8; i++)
        nonce[4 + i] = (uint8_t)(ctr >> (56 - 8 * i));
}

int chan_seal(chan_ctx_t *ctx, chan_t *ch, uint32_t type, const uint8_t *pt, size_t pt_len,
              uint8_t *out)
{
    uint8_t nonce[NONCE_LEN];
    const uint8_t *key;
    EVP_CIPHER_CTX *c;
    keyed_t *kept;
    int n;

    if (pt_len > (size_t)INT_MAX - FRAME_HDR - FRAME_TAG)
        return RC_ETOOBIG;
    /* Never reuse a nonce: a wrapped counter would. (2^64 frames will not happen.) */
    if (ch->tx_ctr == UINT64_MAX)
        return RC_ECRYPTO;
    make_nonce(nonce, ch->tx_ctr);
    frame_hdr_write(out, (uint32_t)(FRAME_HDR + pt_len + FRAME_TAG), type);
    c = pick(ctx, 1, ch, ch->tx_key, &key, &kept);
    if (EVP_EncryptInit_ex(c, NULL, NULL, key, nonce) != 1)
        return crypto_fail("sealing a frame");
    if (kept != NULL)
        kept->serial = ch->serial;
    if (EVP_EncryptUpdate(c, NULL, &n, out, FRAME_HDR) != 1 ||
        (pt_len > 0 && EVP_EncryptUpdate(c, out + FRAME_HDR, &n, pt, (int)pt_len) != 1) ||
        EVP_EncryptFinal_ex(c, out + FRAME_HDR + pt_len, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, FRAME_TAG, out + FRAME_HDR + pt_len) != 1)
        return crypto_fail("sealing a frame");
    ch->tx_ctr++;
    return 0;
}

int chan_open(chan_ctx_t *ctx, chan_t *ch, uint8_t *frame, size_t len)
{
    uint8_t nonce[NONCE_LEN], *body = frame + FRAME_HDR;
    const uint8_t *key;
    EVP_CIPHER_CTX *c;
    keyed_t *kept;
    uint32_t hdr_len, type;
    size_t ct_len;
    int n;

    if (len < FRAME_HDR + FRAME_TAG || len > INT_MAX || ch->rx_ctr == UINT64_MAX)
        return crypto_fail("opening a frame (bad length)");
    /* The header is in the AAD, so a changed length fails the tag anyway; refusing a
     * mismatch with @p len first also keeps a caller's slip from going unnoticed. */
    frame_hdr_read(frame, &hdr_len, &type);
    if (hdr_len != len)
        return crypto_fail("opening a frame (header length differs)");
    ct_len = len - FRAME_HDR - FRAME_TAG;
    make_nonce(nonce, ch->rx_ctr);
    c = pick(ctx, 0, ch, ch->rx_key, &key, &kept);
    if (EVP_DecryptInit_ex(c, NULL, NULL, key, nonce) != 1)
        return crypto_fail("opening a frame");
    if (kept != NULL)
        kept->serial = ch->serial;
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, FRAME_TAG, body + ct_len) != 1 ||
        EVP_DecryptUpdate(c, NULL, &n, frame, FRAME_HDR) != 1 ||
        (ct_len > 0 && EVP_DecryptUpdate(c, body, &n, body, (int)ct_len) != 1) ||
        EVP_DecryptFinal_ex(c, body + ct_len, &n) != 1) {
        /* Unauthenticated plaintext must never be used: wipe it. */
        OPENSSL_cleanse(body, ct_len);
        return crypto_fail("opening a frame");
    }
    ch->rx_ctr++;
    return 0;
}

/* ---- hex --------------------------------------------------------------------------- */

void chan_hex(const uint8_t key[CHAN_KEY], char out[2 * CHAN_KEY + 1])
{
    static const char digits[] = "0123456789abcdef";

    for (int i = 0; i < CHAN_KEY; i++) {
        out[2 * i] = digits[key[i] >> 4];
        out[2 * i + 1] = digits[key[i] & 0xf];
    }
    out[2 * CHAN_KEY] = '\0';
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int chan_unhex(const char *hex, uint8_t out[CHAN_KEY])
{
    uint8_t key[CHAN_KEY];

    for (int i = 0; i < CHAN_KEY; i++) {
        /* hex[2i] is checked before hex[2i+1] is read, so a short string stops at its NUL. */
        int hi = hex_digit(hex[2 * i]);
        if (hi < 0)
            return RC_EINVAL;
        int lo = hex_digit(hex[2 * i + 1]);
        if (lo < 0)
            return RC_EINVAL;
        key[i] = (uint8_t)(hi << 4 | lo);
    }
    if (hex[2 * CHAN_KEY] != '\0')
        return RC_EINVAL;
    memcpy(out, key, CHAN_KEY);
    return 0;
}
