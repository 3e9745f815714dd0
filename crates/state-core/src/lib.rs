pub fn open(p: &std::path::Path) -> Result<(), rocksdb::Error> { rocksdb::DB::open_default(p).map(|_| ()) }
