#ifndef CIM_CORE_VERSION_H
#define CIM_CORE_VERSION_H

/* The build's version: `git describe` of the tree it was built from when there is one
 * (e.g. "0.9.0-42-gabc1234-dirty"), else the release number in SConstruct. */
extern const char cim_version[];

/* Print "<prog> <version>" to stdout: what every program's --version says. */
void version_print(const char *prog);

#endif
