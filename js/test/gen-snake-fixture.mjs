// Generates sdk-wasm/tests/fixtures/snake_case.json: [key, snakeCase(key)] pairs for
// the Rust port's parity tests, from lodash.snakecase 4.1.1, the package
// frontend-platform 8.x imports (and lists the keys where lodash 4.18's snakeCase,
// which knows ordinals such as `1st`, writes something else).
//
//   node js/test/gen-snake-fixture.mjs
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const snakeCase = require('lodash/snakeCase');
const snakecasePackage = require('lodash.snakecase');

const curated = [
  // frontend-platform's own examples and everyday keys
  'testShallow', 'TestDeep', 'test_shallow', 'courseId', 'course_id', 'CourseID', 'userID', 'user_id',
  'blockUsageKey', 'isStaff', 'is_staff', 'numOfAttempts', 'currentTime', 'new_password1', 'newPassword',
  'oldPassword', 'PASSWORD', 'a', 'A', '', ' ', '_', '__', '___private', 'trailing_', '-', '--x--',
  // acronyms and case changes
  'XMLHttpRequest', 'HTMLElement', 'getHTTPResponseCode', 'innerHTML', 'ID', 'IDs', 'userIDs', 'APIKey',
  'iOSVersion', 'macOS', 'eBay', 'MyURLIsHere', 'ABCdef', 'ABcDE', 'aBC', 'AbC', 'ABC_def', 'Abc Def',
  'FOO BAR', 'FOO_BAR', 'fooBAR', 'fooBARBaz', 'TheXMLParserOK',
  // digits and ordinals
  'x1', 'ab12cd', 'version2', 'v2Beta', 'h264Codec', 'mp3', 'MP3', '3d', '3D', '3Dprint', 'area51',
  '11th', '1st', '2nd', '3rd', '4th', '21st', '22nd', '23rd', '101st', '111th', '12TH', '1ST', '2ND',
  '1stPlace', '2ndTry', '3rdParty', 'the1stItem', '1st_place', '1stplace', 'top10', 'top10list', '10x',
  '1e10', '3.14', '0x1F', 'utf8Encoding', 'base64url', 'sha256Sum', 'A1B2C3', 'a1b2c3',
  // dots, dashes, spaces and punctuation
  'foo.bar', 'foo.barBaz', 'edx.ui.lms.link_clicked', 'foo-bar', 'foo--bar', 'kebab-case-key',
  'foo bar', '  leading and trailing  ', 'foo\tbar', 'foo\nbar', 'a/b/c', 'a:b', 'a+b', 'a@b.com',
  'price$', '100%', 'key[0]', 'obj{a}', 'q?x=1', 'hash#tag', 'semi;colon', 'comma,sep', 'quote"d',
  "it's", 'don’t', "rock'n'roll", "O'Neil", 'back\\slash', 'under_score_', 'CamelCase.with-Mixed_separators 2',
  // unicode: Latin-1, Latin Extended-A (deburr), other scripts, combining marks, emoji
  'café', 'Café', 'crème brûlée', 'ÀlaCarte', 'Ærø', 'Œuvre', 'straße', 'STRASSE', 'ĲsselMeer', 'ŉ',
  'naïveApproach', 'façadeBuilder', 'résumé', 'Ørsted', 'ÞórÆvar', 'déjàVu', 'ñandú', 'ĂĂă', 'ſ',
  'fooБар', 'ПриветМир', 'привет мир', 'ΣίσυφοςΣ', 'ΑΒΓ', 'αβγDelta', 'こんにちは世界', '中文Key', 'key中文',
  '한국어Key', 'עברית', 'العربية', 'हिन्दी', 'e\u0301te\u0301', 'a\u20d0b', 'x\ufe20y',
  'emoji😀Key', '😀', '😀😀', 'I❤️JS', '❤JS', '👍🏽ok', '👨‍👩‍👧family', '🇫🇷flag', '🇫🇷🇩🇪', 'a\u200db',
  'thumbs👍Up', 'Ünïcödé', 'ÉCOLE', 'ÉcoleNormale', 'İstanbul', 'ÇAĞ', 'ǅungla', 'ﬁle', 'Ⅻ', '𝒳Math',
  '\u00a0nbsp', 'zero\u200bwidth', 'line\u2028sep', 'em\u2014dash', 'x\u00d7y', 'a\u00f7b', '\u00bfque',
  'key\u00b5', 'mu\u03bc', '\ud800lone', 'lone\udc00', 'x\ufeffbom', 'x\ufe24y', 'x\ufe2fy', 'a\u20f5b', 'e\u20ffe',
];

// Seeded random keys over a pool of tricky characters.
let seed = 0x5eed;
const rand = () => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x80000000;
};
const pool = [
  'a', 'b', 'z', 'A', 'B', 'Z', '0', '1', '2', '3', '4', '9', 's', 't', 'n', 'd', 'r', 'h', 'S', 'T', 'H', 'N', 'D',
  '_', '-', '.', ' ', "'", '’', '$', '/', 'é', 'É', 'ß', 'ø', 'Ø', 'æ', 'ą', 'Ł', 'ŉ', 'Б', 'б', 'Σ', 'ς', '中',
  '\u0301', '\u00d7', '\u00a0', '\u2014', '\u200d', '\ufe0f', '😀', '🏽', '🇫', '❤', '\u2700', '\ud83c',
];
const random = [];
for (let i = 0; i < 400; i++) {
  const len = 1 + Math.floor(rand() * 10);
  let key = '';
  for (let j = 0; j < len; j++) key += pool[Math.floor(rand() * pool.length)];
  random.push(key);
}

const keys = [...new Set([...curated, ...random])];
const table = keys.map((k) => [k, snakecasePackage(k)]);
const differ = keys.filter((k) => snakecasePackage(k) !== snakeCase(k));
console.log(`lodash 4.18 differs on ${differ.length} keys:`, differ.map((k) => `${JSON.stringify(k)} → ${JSON.stringify(snakeCase(k))}`).join(', '));
const out = fileURLToPath(new URL('../../sdk-wasm/tests/fixtures/snake_case.json', import.meta.url));
writeFileSync(out, `${JSON.stringify(table, null, 0).replace(/\],\[/g, '],\n[')}\n`);
console.log(`wrote ${table.length} keys to ${out}`);
