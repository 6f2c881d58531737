'use strict'
// Mocha's dot reporter, then one closing line in the plain form CI reads: "N passed, N failed".
const { reporters } = require('mocha')

class ShoalReporter extends reporters.Dot {
  constructor (runner, options) {
    super(runner, options)
    runner.once('end', () => {
      const { passes, failures, pending } = this.stats
      console.log(`tests: ${passes} passed, ${failures} failed, ${pending} skipped`)
    })
  }
}

module.exports = ShoalReporter
