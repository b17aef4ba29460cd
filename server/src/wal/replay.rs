//! Opening a WAL: reading its segments in order, replaying records (entries after the snapshot
//! marker, conflicts resolved, the last HardState), truncating a torn tail of the last segment,
//! and refusing corruption anywhere else with the file and offset.
//!
//! Must never: repair anything but a torn tail of the last segment.

use super::*;

impl Wal {
    pub(super) async fn open_inner(
        disk: Arc<dyn Disk>,
        dir: &Path,
        opts: WalOptions,
        start: Option<WalSnapshot>,
    ) -> Result<(Wal, WalContents), WalError> {
        let names = match disk.list(dir) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(WalError::NotFound { dir: dir.into() })
            }
            Err(e) => return Err(WalError::io("list", dir, e)),
        };
        remove_tmp_files(&*disk, dir, &names).await?;
        let mut segs: Vec<(u64, u64, String)> = Vec::new();
        for n in names {
            match parse_segment_name(&n) {
                Some((seq, idx)) => segs.push((seq, idx, n)),
                None if n.ends_with(".wal") => {
                    tracing::warn!(file = %n, dir = %dir.display(), "wal: ignoring file with an unexpected name");
                }
                None => {}
            }
        }
        segs.sort();
        if segs.is_empty() {
            return Err(WalError::NotFound { dir: dir.into() });
        }
        for w in segs.windows(2) {
            if w[1].0 != w[0].0 + 1 || w[1].1 < w[0].1 {
                return Err(WalError::InvalidSegments {
                    dir: dir.into(),
                    reason: format!("{} does not follow {}", w[1].2, w[0].2),
                });
            }
        }

        let mut segments = Vec::with_capacity(segs.len());
        let mut items: Vec<Item> = Vec::new();
        let mut metadata: Option<Vec<u8>> = None;
        let mut last_file: Option<(Arc<dyn DiskFile>, u64, u64, Tail)> = None;
        let n_segs = segs.len();
        for (i, (seq, first_index, name)) in segs.into_iter().enumerate() {
            let path = dir.join(&name);
            let is_last = i + 1 == n_segs;
            let corrupt = |offset: u64, reason: String| WalError::Corrupt {
                file: path.clone(),
                offset,
                reason,
            };
            let file = disk
                .open(&path, OpenMode::Existing)
                .map_err(|e| WalError::io("open", &path, e))?;
            let buf = file
                .read_all()
                .map_err(|e| WalError::io("read", &path, e))?;
            let scan = record::scan(&buf).map_err(|e| corrupt(e.offset, e.reason))?;
            if let Tail::Torn { offset, reason } = &scan.tail {
                if !is_last {
                    return Err(corrupt(
                        *offset,
                        format!("{reason} (in a segment that is not the last)"),
                    ));
                }
            }
            let mut recs = scan.records.iter();
            match recs.next() {
                Some(r) if r.rtype == RecordType::Metadata => match &metadata {
                    None => metadata = Some(r.payload.to_vec()),
                    Some(m) if m.as_slice() == r.payload => {}
                    Some(_) => {
                        return Err(corrupt(
                            r.offset,
                            "metadata differs from the first segment's".into(),
                        ))
                    }
                },
                Some(r) => {
                    return Err(corrupt(
                        r.offset,
                        "segment does not start with a metadata record".into(),
                    ))
                }
                None => return Err(corrupt(0, "segment holds no valid record".into())),
            }
            for r in recs {
                let item = match r.rtype {
                    RecordType::Metadata => {
                        return Err(corrupt(r.offset, "unexpected metadata record".into()))
                    }
                    RecordType::Entry => {
                        let e = Entry::parse_from_bytes(r.payload)
                            .map_err(|e| corrupt(r.offset, format!("undecodable entry: {e}")))?;
                        Item::Entry(e, i, r.offset)
                    }
                    RecordType::State => {
                        Item::State(HardState::parse_from_bytes(r.payload).map_err(|e| {
                            corrupt(r.offset, format!("undecodable hard state: {e}"))
                        })?)
                    }
                    RecordType::Snapshot => {
                        Item::Snapshot(decode_snapshot(r.payload).ok_or_else(|| {
                            corrupt(
                                r.offset,
                                format!("snapshot marker of {} bytes, want 16", r.payload.len()),
                            )
                        })?)
                    }
                };
                items.push(item);
            }
            let good_end = scan.good_end;
            let file_len = buf.len() as u64;
            if is_last {
                last_file = Some((file, good_end, file_len, scan.tail));
            }
            segments.push(Segment {
                seq,
                first_index,
                path,
                len: good_end,
            });
        }
        let metadata = metadata.unwrap_or_default();
        let (file, good_end, file_len, tail) = match last_file {
            Some(l) => l,
            None => return Err(WalError::NotFound { dir: dir.into() }),
        };

        // Snapshot markers and the starting point.
        let mut snapshots = Vec::new();
        let mut hard_state = HardState::default();
        for it in &items {
            match it {
                Item::Snapshot(s) => snapshots.push(*s),
                Item::State(h) => hard_state = h.clone(),
                Item::Entry(..) => {}
            }
        }
        let newest = snapshots.iter().copied().max_by_key(|s| s.index);
        let from = match start {
            None => newest,
            Some(s) if s.index == 0 => None,
            Some(s) => match snapshots.iter().rev().find(|m| m.index == s.index) {
                None => {
                    return Err(WalError::SnapshotNotFound {
                        dir: dir.into(),
                        index: s.index,
                        term: s.term,
                    })
                }
                Some(m) if m.term != s.term => {
                    return Err(WalError::SnapshotMismatch {
                        dir: dir.into(),
                        index: s.index,
                        expected: s.term,
                        found: m.term,
                    })
                }
                Some(_) => Some(s),
            },
        };

        // Entries after `from`; a later entry at index i replaces every entry >= i.
        let start_index = from.map(|s| s.index);
        let mut base: Option<u64> = start_index;
        let mut entries: Vec<Entry> = Vec::new();
        for it in items {
            let Item::Entry(e, seg, offset) = it else {
                continue;
            };
            let idx = e.index;
            let corrupt = |reason: String| WalError::Corrupt {
                file: segments[seg].path.clone(),
                offset,
                reason,
            };
            if idx == 0 {
                return Err(corrupt("entry with index 0".into()));
            }
            if start_index.is_some_and(|s| idx <= s) {
                continue;
            }
            let b = match base {
                Some(b) if idx > b => b,
                // No start marker and an entry at or before the first one kept: it replaces all.
                _ => {
                    entries.clear();
                    base = Some(idx - 1);
                    idx - 1
                }
            };
            let pos = idx - b - 1;
            if let (Some(s), true) = (start_index, entries.is_empty() && pos > 0) {
                return Err(WalError::EntriesReleased {
                    dir: dir.into(),
                    index: s,
                    first: idx,
                });
            }
            if pos > entries.len() as u64 {
                return Err(corrupt(format!(
                    "entry index {idx} leaves a gap after index {}",
                    b + entries.len() as u64
                )));
            }
            entries.truncate(pos as usize);
            entries.push(e);
        }
        let last_index = entries
            .last()
            .map(|e| e.index)
            .unwrap_or(0)
            .max(newest.map_or(0, |s| s.index))
            .max(start_index.unwrap_or(0));

        let mut timer = SyncTimer::default();
        let last_path = segments.last().map(|s| s.path.clone()).unwrap_or_default();
        if good_end < file_len {
            if let Tail::Torn { offset, reason } = &tail {
                tracing::warn!(
                    path = %last_path.display(),
                    offset,
                    reason = %reason,
                    dropped_bytes = file_len - good_end,
                    "wal: truncating torn last record"
                );
            }
            file.set_len(good_end)
                .map_err(|e| WalError::io("truncate", &last_path, e))?;
            timer.sync(&*file, &last_path).await?;
        }

        let wal = Wal {
            disk,
            dir: dir.into(),
            opts,
            metadata: metadata.clone(),
            segments,
            file,
            offset: good_end,
            last_index,
            state: hard_state.clone(),
            snapshot: newest,
            timer,
            unsynced: false,
            failed: None,
        };
        let contents = WalContents {
            metadata,
            hard_state,
            entries,
            snapshot: from,
            snapshots,
        };
        Ok((wal, contents))
    }
}
