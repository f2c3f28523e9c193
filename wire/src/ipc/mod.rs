//! (IPC: being written)
