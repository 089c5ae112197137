#include "core/version.h"

#include <stdio.h>

#ifndef CIM_VERSION
#error "CIM_VERSION is defined by the build (SConstruct)"
#endif

const char cim_version[] = CIM_VERSION;

void version_print(const char *prog)
{
    printf("%s %s\n", prog, cim_version);
}
