/* cimctl_http: cimctl's calls to a running cimd's admin API (docs/ADMIN-API.md), through
 * libcurl. */
#ifndef CIM_CMD_CIMCTL_HTTP_H
#define CIM_CMD_CIMCTL_HTTP_H

#include <stddef.h>

#define CTL_ADMIN_DEFAULT "127.0.0.1:7401"

/**
 * @p method http://@p admin@p path with "Authorization: Bearer @p bearer" (NULL: no such
 * header; at most 500 bytes) and the JSON @p body (NULL: none).
 * @param[out] status  the HTTP status (0: no answer)
 * @param[out] answer  the answer body, NUL-terminated (free it), or NULL
 * @return 0 when an answer came, or -1 with the reason written to @p err.
 */
int ctl_http(const char *admin, const char *bearer, const char *method, const char *path,
             const char *body, long *status, char **answer, char *err, size_t errlen);

#endif
