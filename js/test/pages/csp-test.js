import * as T from '/index.js';

window.T = T;
