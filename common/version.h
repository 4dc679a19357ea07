/* version.h - the release both programs report with --version. */
#ifndef PIPEFILE_VERSION_H
#define PIPEFILE_VERSION_H

#define PIPEFILE_VERSION "0.1.0"

#endif
