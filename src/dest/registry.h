// Destination registry internals: the factories of the destination files.
#pragma once
#include "pbackup/destination.h"

namespace pbackup {
std::unique_ptr<Destination> make_file_destination(const DestinationSpec& s);
std::unique_ptr<Destination> make_memory_destination(const DestinationSpec& s);
std::unique_ptr<Destination> make_split_destination(const DestinationSpec& s);
std::unique_ptr<Destination> make_cloud_destination(const DestinationSpec& s);
// Bytes of an object the memory destination holds (tests).
std::string memory_object(const std::string& name);
}  // namespace pbackup
