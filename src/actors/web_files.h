/**
 * web_files: the browser client's files (web/), compiled into cimd by src/SConscript
 * (web_files.c is generated) and served by the WebSocket listener at / (actors/ws.c).
 */
#ifndef CIM_ACTORS_WEB_FILES_H
#define CIM_ACTORS_WEB_FILES_H

#include <stddef.h>

typedef struct web_file {
    const char *path; /* "/index.html" */
    const char *type; /* Content-Type */
    const unsigned char *data;
    size_t len;
} web_file_t;

/** Every file, then an entry with path NULL. */
extern const web_file_t web_files[];

#endif
