// What a .pt file's bytes declare, checked before LibTorch's reader believes it. LibTorch
// (1.13) allocates every length that a zip entry or a pickle opcode declares before it
// reads a byte of it, so a forged file of a kilobyte could ask for gigabytes; a genuine
// torch.save file never declares more than it holds.
#pragma once

#include <cstddef>
#include <string>

namespace resgd {

/// Why the zip directory of a .pt file's `bytes` declares an entry larger than the file
/// (zip64 included), or "" where none does. An unreadable directory is left to LibTorch's
/// reader, which refuses it.
std::string oversized_zip_entry(const std::string& bytes);

/// Why a pickle of `size` bytes declares a string, bytes or integer longer than what is
/// left of it, or a memo index past its own length (LibTorch grows its memo to any index
/// it is given), or "" where none does. Scanning stops, clean, at the first opcode it does
/// not know, which LibTorch's unpickler then refuses.
std::string oversized_pickle_claim(const char* pickle, size_t size);

}  // namespace resgd
