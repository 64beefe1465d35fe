// console: written below
