//! The dead-letter file: messages Segment refused for good (or that it would refuse),
//! one JSON object per line (`at`, `sink`, `id`, `reason`, `detail`, for refusals
//! `status` and `response`, and `event`: the message, ready to post again). Mode 0640.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use event_model::processor::Rejection;
use event_model::rules::json::push_str_literal;
use event_model::timestamp;

pub struct DeadLetter {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    dirty: bool,
}

impl DeadLetter {
    pub fn new(path: PathBuf) -> Self {
        DeadLetter { path, out: None, dirty: false }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Appends an entry for `message` (its compact JSON; `id` its message id).
    pub fn write(&mut self, sink: &str, id: &str, message: &str, why: &Rejection, response: Option<(u16, &str)>) -> io::Result<()> {
        if self.out.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new().create(true).append(true).mode(0o640).open(&self.path)?;
            file.set_permissions(std::fs::Permissions::from_mode(0o640))?;
            self.out = Some(BufWriter::new(file));
        }
        let mut line = String::with_capacity(message.len() + 256);
        line.push_str("{\"at\":");
        push_str_literal(&mut line, &timestamp::format(timestamp::now()));
        line.push_str(",\"sink\":");
        push_str_literal(&mut line, sink);
        line.push_str(",\"id\":");
        push_str_literal(&mut line, id);
        line.push_str(",\"reason\":");
        push_str_literal(&mut line, why.reason);
        line.push_str(",\"detail\":");
        push_str_literal(&mut line, &why.detail);
        if let Some((status, body)) = response {
            line.push_str(",\"status\":");
            line.push_str(&status.to_string());
            line.push_str(",\"response\":");
            push_str_literal(&mut line, body);
        }
        line.push_str(",\"event\":");
        line.push_str(message);
        line.push_str("}\n");
        let out = self.out.as_mut().expect("opened above");
        out.write_all(line.as_bytes())?;
        self.dirty = true;
        Ok(())
    }

    /// Makes every entry durable (before the checkpoint passes the events).
    pub fn sync(&mut self) -> io::Result<()> {
        if let (true, Some(out)) = (self.dirty, self.out.as_mut()) {
            out.flush()?;
            out.get_ref().sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }
}
