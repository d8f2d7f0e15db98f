// Placeholder until the gradcheck module lands.
