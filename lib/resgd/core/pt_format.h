// What a .pt file's bytes declare, checked before LibTorch's reader believes it. LibTorch
// (1.13) allocates every length that a zip entry or a pickle opcode declares before it
// reads a byte of it, so a forged file of a kilobyte could ask for gigabytes; a genuine
// torch.save file never declares more than it holds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace resgd {

/// The little-endian unsigned integer of `width` bytes of `bytes` at `at`; 0 past its end.
uint64_t little_endian(const std::string& bytes, size_t at, int width);

/// Why the zip directory of a .pt file's `bytes` declares an entry larger than the file
/// (zip64 included), or "" where none does. An unreadable directory is left to LibTorch's
/// reader, which refuses it.
std::string oversized_zip_entry(const std::string& bytes);

/// The deepest nesting of values a pickle may build. A genuine tensor file nests about 5
/// deep (dictionary, tensor, its arguments, its sizes); LibTorch builds and frees a nested
/// value recursively, so a forged file of 200,000 nested tuples overflowed the stack.
constexpr int kMaxPickleNesting = 100;
/// The largest pickle read: a genuine one holds names and sizes, not tensor data (a
/// dictionary of 10^5 tensors pickles to about 10 MB).
constexpr size_t kMaxPickleBytes = size_t{64} << 20;

/// Why a pickle of `size` bytes is refused before LibTorch's unpickler reads it, or ""
/// where it is not (pt_pickle.cpp). It must be what torch.save or resgd writes for a
/// dictionary of tensors: at most kMaxPickleBytes; only the opcodes and GLOBALs such a file
/// holds (OrderedDict, _rebuild_tensor_v2, the storage types, LibTorch's type tags and typed
/// lists); each function called with a tuple of the arguments it takes, each storage named
/// as ('storage', type, key, location, size); no string, integer or memo index past its end
/// or its memo; no value taken from an empty stack; values nested at most kMaxPickleNesting
/// deep, and none changed after it was placed inside another (which would let a nesting
/// grow unseen). The scan keeps a few facts per value, in a loop: no recursion that the
/// file controls.
std::string refused_pickle(const char* pickle, size_t size);

}  // namespace resgd
