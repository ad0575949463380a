// Questions answered from catalogs (issue 13): list --long, find, compare. Rank 0 works; the
// other ranks wait for its verdict.
#pragma once
#include <functional>
#include <string>
#include <string_view>

#include "pbackup/comm.h"
#include "pbackup/log.h"
#include "pbackup/options.h"

struct archive_entry;

namespace pbackup {

struct CatalogRecord;
struct ArchiveSource;

// list --long from the archive's catalog; false when it has none (the caller reads the archive).
bool list_long_from_catalog(const ArchiveSource& s);
// A libarchive header as a catalog record (list --long of foreign archives).
CatalogRecord record_of(archive_entry* e);

// find PATTERN --source PATH...: "ARCHIVE<TAB>PATH" for every catalog entry matching PATTERN
// (select.h's rules). 0 found and read all, 1 some source had no catalog or nothing matched
// (as grep), 2 an error.
int run_find(Comm& comm, const RestoreOptions& opt, Log& log);

// compare --source ARCHIVE [--against DIR] [--checksum]: like tar --compare, from the catalog,
// against the live tree. 0 identical, 1 differences (listed on stdout), 2 error.
int run_compare(Comm& comm, const RestoreOptions& opt, Log& log);

// Streams every member of an archive through libarchive (restore.cpp): `each` gets the header
// and a reader of its data pieces (empty at the end; `offset` says where the piece goes).
void stream_members(const RestoreOptions& opt,
                    const std::function<void(archive_entry*, const std::function<std::string_view(uint64_t&)>&)>& each);

}  // namespace pbackup
